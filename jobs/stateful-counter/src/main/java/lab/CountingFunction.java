package lab;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Instant;

import org.apache.flink.api.common.TaskInfo;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Counts records per key in {@code ValueState<Long> count} and emits one output line per record.
 * Exposes a gauge {@code maxCount}. With {@code failAfter > 0} it throws once this attempt has
 * processed that many records. With {@code snapshotDelayFile} set, every checkpoint and savepoint
 * of this operator sleeps for the number of milliseconds written in that file while it exists, so
 * a test can make a savepoint take as long as it likes.
 */
public final class CountingFunction extends KeyedProcessFunction<Long, Long, String>
        implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;

    private final String version;
    private final long failAfter;
    private final String snapshotDelayFile;

    private transient ValueState<Long> count;
    private transient long processedThisAttempt;
    private transient volatile long maxCount;
    private transient int attempt;
    private transient int subtask;

    public CountingFunction(String version, long failAfter, String snapshotDelayFile) {
        this.version = version;
        this.failAfter = failAfter;
        this.snapshotDelayFile = snapshotDelayFile;
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        if (snapshotDelayFile == null || snapshotDelayFile.isEmpty()) {
            return;
        }
        Path p = Paths.get(snapshotDelayFile);
        if (Files.exists(p)) {
            long ms = Long.parseLong(Files.readString(p).trim());
            Thread.sleep(ms);
        }
    }

    @Override
    public void initializeState(FunctionInitializationContext context) {}

    @Override
    public void open(OpenContext openContext) throws Exception {
        count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
        TaskInfo info = getRuntimeContext().getTaskInfo();
        attempt = info.getAttemptNumber();
        subtask = info.getIndexOfThisSubtask();
        processedThisAttempt = 0;
        maxCount = 0;
        getRuntimeContext().getMetricGroup().gauge("maxCount", (Gauge<Long>) () -> maxCount);
    }

    @Override
    public void processElement(Long seq, Context ctx, Collector<String> out) throws Exception {
        if (failAfter > 0 && processedThisAttempt >= failAfter) {
            throw new IllegalStateException(
                    "stateful-counter " + version + ": failing on purpose after " + failAfter
                            + " records (attempt " + attempt + ", --failAfter)");
        }
        processedThisAttempt++;
        Long current = count.value();
        long next = (current == null ? 0L : current) + 1L;
        count.update(next);
        if (next > maxCount) {
            maxCount = next;
        }
        out.collect("ts=" + Instant.now()
                + " version=" + version
                + " attempt=" + attempt
                + " subtask=" + subtask
                + " key=" + ctx.getCurrentKey()
                + " count=" + next
                + " seq=" + seq);
    }
}

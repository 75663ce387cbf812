package lab;

import java.time.Instant;

import org.apache.flink.api.common.TaskInfo;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Counts records per key in {@code ValueState<Long> count} and emits one output line per record.
 * Exposes a gauge {@code maxCount}. With {@code failAfter > 0} it throws once this attempt has
 * processed that many records.
 */
public final class CountingFunction extends KeyedProcessFunction<Long, Long, String> {
    private static final long serialVersionUID = 1L;

    private final String version;
    private final long failAfter;

    private transient ValueState<Long> count;
    private transient long processedThisAttempt;
    private transient volatile long maxCount;
    private transient int attempt;
    private transient int subtask;

    public CountingFunction(String version, long failAfter) {
        this.version = version;
        this.failAfter = failAfter;
    }

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

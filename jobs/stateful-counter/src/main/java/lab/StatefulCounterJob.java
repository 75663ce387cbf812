package lab;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * Stateful test job for flink-gitops: proves that keyed state and the source position survive
 * stop-with-savepoint / restore.
 *
 * <pre>
 * DataGeneratorSource&lt;Long&gt; (uid seq-source, rate-limited, position checkpointed)
 *   -&gt; keyBy(v % keys)
 *   -&gt; KeyedProcessFunction with ValueState&lt;Long&gt; count (uid --counterUid, default keyed-counter)
 *   -&gt; Sink V2 appending one line per record to --out FILE (uid file-sink)
 * </pre>
 *
 * Output line: {@code ts=<ISO instant> version=<V> attempt=<n> subtask=<i> key=<k> count=<c> seq=<s>}.
 * With parallelism 1 and correctly restored state, {@code count == seq / keys + 1} always holds.
 *
 * <p>Arguments (all optional): --version V (default v1), --out FILE (default
 * /tmp/stateful-counter.out), --rate R records/s (default 5), --keys K (default 3), --counterUid
 * UID (default keyed-counter), --checkpointMs MS (default 2000, only applied if neither given
 * explicitly nor configured by the cluster), --failAfter N (throw after N records per attempt;
 * sets restart-strategy none unless --restarts), --restarts K (fixed-delay restarts, 1 s delay),
 * --snapshotDelayFile PATH (while PATH exists, the sink waits the milliseconds written in it
 * before each checkpoint or savepoint barrier: a slow savepoint on demand).
 */
public final class StatefulCounterJob {

    static final long DEFAULT_CHECKPOINT_MS = 2000L;

    private StatefulCounterJob() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> a = parseArgs(args);
        String version = a.getOrDefault("version", "v1");
        String out = a.getOrDefault("out", "/tmp/stateful-counter.out");
        double rate = Double.parseDouble(a.getOrDefault("rate", "5"));
        long keys = Long.parseLong(a.getOrDefault("keys", "3"));
        String counterUid = a.getOrDefault("counterUid", "keyed-counter");
        long failAfter = Long.parseLong(a.getOrDefault("failAfter", "0"));
        int restarts = Integer.parseInt(a.getOrDefault("restarts", "-1"));
        if (keys < 1) {
            throw new IllegalArgumentException("--keys must be >= 1");
        }
        if (rate <= 0) {
            throw new IllegalArgumentException("--rate must be > 0");
        }

        Configuration conf = new Configuration();
        if (restarts >= 0) {
            conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
            conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, restarts);
            conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofSeconds(1));
        } else if (failAfter > 0) {
            conf.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);

        if (a.containsKey("checkpointMs")) {
            env.enableCheckpointing(Long.parseLong(a.get("checkpointMs")));
        } else if (env.getCheckpointInterval() <= 0) {
            // Nothing configured by the cluster / submission: use the default.
            env.enableCheckpointing(DEFAULT_CHECKPOINT_MS);
        }

        DataGeneratorSource<Long> source =
                new DataGeneratorSource<>(
                        new SequenceGenerator(),
                        Long.MAX_VALUE,
                        RateLimiterStrategy.perSecond(rate),
                        Types.LONG);

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "seq-source")
                .uid("seq-source")
                .name("seq-source")
                .keyBy(new ModKeySelector(keys))
                .process(new CountingFunction(version, failAfter))
                .uid(counterUid)
                .name("keyed-counter")
                .sinkTo(new LineFileSink(out, a.get("snapshotDelayFile")))
                .uid("file-sink")
                .name("file-sink");

        env.execute("stateful-counter-" + version);
    }

    static Map<String, String> parseArgs(String[] args) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (!arg.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument: " + arg);
            }
            String key = arg.substring(2);
            String value;
            int eq = key.indexOf('=');
            if (eq >= 0) {
                value = key.substring(eq + 1);
                key = key.substring(0, eq);
            } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
                value = args[++i];
            } else {
                value = "true";
            }
            m.put(key, value);
        }
        return m;
    }
}

package lab;

import org.apache.flink.api.java.functions.KeySelector;

/** key = value % keys. */
public final class ModKeySelector implements KeySelector<Long, Long> {
    private static final long serialVersionUID = 1L;

    private final long keys;

    public ModKeySelector(long keys) {
        this.keys = keys;
    }

    @Override
    public Long getKey(Long value) {
        return value % keys;
    }
}

package lab;

import org.apache.flink.connector.datagen.source.GeneratorFunction;

/** Emits the sequence number itself (0, 1, 2, ...). */
public final class SequenceGenerator implements GeneratorFunction<Long, Long> {
    private static final long serialVersionUID = 1L;

    @Override
    public Long map(Long index) {
        return index;
    }
}

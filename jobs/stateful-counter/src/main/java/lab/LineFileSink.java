package lab;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;

/**
 * Sink V2 that appends each record as one line to a local file and flushes after every line
 * (at-least-once; non-transactional). Every line is written with a single append-mode write,
 * so several subtasks may share the file.
 */
public final class LineFileSink implements Sink<String> {
    private static final long serialVersionUID = 1L;

    private final String path;

    public LineFileSink(String path) {
        this.path = path;
    }

    @Override
    public SinkWriter<String> createWriter(WriterInitContext context) throws IOException {
        return new Writer(path);
    }

    static final class Writer implements SinkWriter<String> {
        private final FileOutputStream out;

        Writer(String path) throws IOException {
            File f = new File(path);
            File parent = f.getAbsoluteFile().getParentFile();
            if (parent != null && !parent.isDirectory() && !parent.mkdirs() && !parent.isDirectory()) {
                throw new IOException("cannot create directory " + parent);
            }
            this.out = new FileOutputStream(f, true);
        }

        @Override
        public void write(String line, Context context) throws IOException {
            out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
        }

        @Override
        public void flush(boolean endOfInput) throws IOException {
            out.flush();
        }

        @Override
        public void close() throws IOException {
            out.close();
        }
    }
}

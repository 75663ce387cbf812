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
 * so several subtasks may share the file. With {@code snapshotDelayFile} set, the writer waits
 * before each checkpoint or savepoint (in {@code flush}, which runs before the barrier) for
 * the number of milliseconds written in that file while it exists: a slow savepoint on demand.
 */
public final class LineFileSink implements Sink<String> {
    private static final long serialVersionUID = 1L;

    private final String path;
    private final String snapshotDelayFile;

    public LineFileSink(String path, String snapshotDelayFile) {
        this.path = path;
        this.snapshotDelayFile = snapshotDelayFile;
    }

    @Override
    public SinkWriter<String> createWriter(WriterInitContext context) throws IOException {
        return new Writer(path, snapshotDelayFile);
    }

    static final class Writer implements SinkWriter<String> {
        private final FileOutputStream out;
        private final String snapshotDelayFile;

        Writer(String path, String snapshotDelayFile) throws IOException {
            this.snapshotDelayFile = snapshotDelayFile;
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
            if (endOfInput || snapshotDelayFile == null || snapshotDelayFile.isEmpty()) {
                return;
            }
            java.nio.file.Path p = java.nio.file.Paths.get(snapshotDelayFile);
            if (java.nio.file.Files.exists(p)) {
                long ms = Long.parseLong(java.nio.file.Files.readString(p).trim());
                try {
                    Thread.sleep(ms);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while delaying the snapshot", e);
                }
            }
        }

        @Override
        public void close() throws IOException {
            out.close();
        }
    }
}

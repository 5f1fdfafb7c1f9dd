package io.tessera.bench;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.logging.LogManager;

/**
 * Keeps the main job's console to one line per case by silencing JVM and library notices at their
 * source, while warnings and errors still reach the console:
 * <ul>
 *   <li>{@code --sun-misc-unsafe-memory-access=allow} in every JMH fork: JMH itself calls
 *       {@code sun.misc.Unsafe}, which JDK 25 warns about on first use (the launcher passes the same
 *       flag to this JVM);</li>
 *   <li>{@code java.util.logging} at WARNING in this JVM and the forks, through a configuration file:
 *       Tessera's {@code System.Logger} messages and, through the slf4j-jdk14 binding of the peers
 *       build, DJL's SLF4J messages (which otherwise print "No SLF4J providers were found"), and DJL's
 *       CUDA probe at SEVERE only: on a CPU-only machine it warns "Failed to detect GPU count" in every
 *       fork that loads PyTorch;</li>
 *   <li>the JVM's "Using incubator modules: jdk.incubator.vector" notice, which no flag turns off: JMH
 *       copies the forks' standard output and error to its output stream, which for the main job is
 *       {@link #forkOutput()}, where that one exact line is dropped (the launcher filters this JVM's
 *       own; {@link #install()} does the same for this JVM's {@link System#err}).</li>
 * </ul>
 */
public final class Quiet {
    private Quiet() {}

    static final String INCUBATOR_NOTICE = "WARNING: Using incubator modules: jdk.incubator.vector";

    static final String LOGGING = """
            handlers = java.util.logging.ConsoleHandler
            .level = WARNING
            java.util.logging.ConsoleHandler.level = WARNING
            java.util.logging.SimpleFormatter.format = %4$s: %5$s%6$s%n
            ai.djl.util.cuda.level = SEVERE
            """;

    private static Path loggingConfig;
    private static PrintStream forkOutput;

    /** Where JMH prints what its forks write: standard output, without the incubator notice. */
    public static synchronized PrintStream forkOutput() {
        if (forkOutput == null) forkOutput = new LineFilter(System.out);
        return forkOutput;
    }

    /** The JVM flags every fork gets. */
    public static synchronized List<String> forkFlags() {
        return List.of("--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow", "-Djava.util.logging.config.file=" + loggingConfig());
    }

    /**
     * Runs one JMH configuration with {@link #forkFlags()} and {@code extraForkArgs} appended to its
     * forks' JVM arguments (options replace a benchmark's {@code @Fork} arguments rather than adding
     * to them, so the flags are all repeated here) and the forks' output through {@link #forkOutput()}.
     */
    public static org.openjdk.jmh.results.RunResult runSingle(org.openjdk.jmh.runner.options.ChainedOptionsBuilder jmh, List<String> extraForkArgs)
            throws org.openjdk.jmh.runner.RunnerException {
        List<String> args = new java.util.ArrayList<>(forkFlags());
        args.addAll(extraForkArgs);
        jmh.jvmArgsAppend(args.toArray(String[]::new));
        var options = jmh.build();
        Trace.mark("JMH fork starts: " + options.getIncludes() + " " + options.getParameter("pattern").orElse(null));
        var result = new org.openjdk.jmh.runner.Runner(options,
                org.openjdk.jmh.runner.format.OutputFormatFactory.createFormatInstance(forkOutput(), org.openjdk.jmh.runner.options.VerboseMode.SILENT)).runSingle();
        Trace.mark("JMH fork ended");
        return result;
    }

    /** Filters this JVM's standard error and sets its logging to WARNING. */
    static synchronized void install() {
        if (!(System.err instanceof LineFilter)) System.setErr(new LineFilter(System.err));
        try {
            LogManager.getLogManager().readConfiguration(new ByteArrayInputStream(LOGGING.getBytes(StandardCharsets.ISO_8859_1)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Path loggingConfig() {
        if (loggingConfig == null) {
            try {
                loggingConfig = Files.createTempFile("tessera-bench-logging", ".properties");
                loggingConfig.toFile().deleteOnExit();
                Files.writeString(loggingConfig, LOGGING);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return loggingConfig;
    }

    /** A print stream that forwards whole lines, dropping the incubator notice. */
    static final class LineFilter extends PrintStream {
        LineFilter(OutputStream target) {
            super(new Lines(target), true, StandardCharsets.UTF_8);
        }
    }

    private static final class Lines extends OutputStream {
        private final OutputStream target;
        private final ByteArrayOutputStream line = new ByteArrayOutputStream();

        Lines(OutputStream target) { this.target = target; }

        @Override
        public synchronized void write(int b) throws IOException {
            line.write(b);
            if (b == '\n') emit();
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) throws IOException {
            for (int i = off; i < off + len; i++) write(b[i]);
        }

        @Override
        public synchronized void flush() throws IOException {
            target.flush();   // a partial line waits for its end, so it can still be recognised
        }

        private void emit() throws IOException {
            String text = line.toString(StandardCharsets.UTF_8);
            line.reset();
            if (!text.strip().equals(INCUBATOR_NOTICE)) {
                target.write(text.getBytes(StandardCharsets.UTF_8));
                target.flush();
            }
        }
    }
}

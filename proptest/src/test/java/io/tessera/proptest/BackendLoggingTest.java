package io.tessera.proptest;

import io.tessera.backend.Backend;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;

/**
 * The backend pick is logged (System.Logger, so any logging framework can route it) when it is made
 * automatically, and only then. The registry initialises once per class loader, so the check runs
 * on a fresh copy of the engine's classes.
 */
class BackendLoggingTest {

    @Test
    void namingABackendLogsNothingAndTheAutomaticPickLogsOnce() throws Exception {
        Logger jul = Logger.getLogger("io.tessera.backend");
        List<LogRecord> records = new ArrayList<>();
        Handler handler = new Handler() {
            @Override public void publish(LogRecord r) { synchronized (records) { records.add(r); } }
            @Override public void flush() {}
            @Override public void close() {}
        };
        jul.addHandler(handler);
        try {
            URL classes = Backend.class.getProtectionDomain().getCodeSource().getLocation();
            try (URLClassLoader fresh = new URLClassLoader(new URL[] {classes}, ClassLoader.getPlatformClassLoader())) {
                Class<?> backend = Class.forName("io.tessera.backend.Backend", true, fresh);
                assertThat(backend).isNotSameAs(Backend.class);
                backend.getMethod("named", String.class).invoke(null, "scalar");
                backend.getMethod("available").invoke(null);
                assertThat(records).as("Backend.named and available() log nothing").isEmpty();
                Object best = backend.getMethod("best").invoke(null);
                backend.getMethod("best").invoke(null);
                assertThat(records).hasSize(1);
                assertThat(records.getFirst().getLevel()).isEqualTo(Level.INFO);
                assertThat(records.getFirst().getMessage()).startsWith("Tessera backend (picked automatically): "
                        + backend.getMethod("name").invoke(best));
            }
        } finally {
            jul.removeHandler(handler);
        }
    }
}

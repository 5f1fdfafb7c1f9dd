package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.backend.Backend;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Without an OpenCL platform the backend is unavailable and says so, rather than blaming the JVM
 * flags: a child JVM started exactly like this one (the SDK's argfile included) but with the
 * OpenCL ICD loader pointed at an empty vendor directory ({@code OCL_ICD_VENDORS}), so it finds
 * no platform.
 */
class TornadoNoPlatformTest {

    /** Run in the child JVM: prints the tornado backend's availability and description. */
    public static void main(String[] args) {
        Backend b = Backend.available().stream().filter(x -> x.name().equals("tornado")).findFirst().orElse(null);
        if (b == null) {
            for (Backend x : java.util.ServiceLoader.load(Backend.class)) if (x.name().equals("tornado")) b = x;
        }
        System.out.println("available=" + (b != null && b.isAvailable()));
        System.out.println("description=" + (b == null ? "not registered" : b.description()));
    }

    @Test
    void withoutAnOpenCLPlatformTheBackendBlamesTheMissingPlatform() throws IOException, InterruptedException {
        Path noVendors = Files.createTempDirectory("no-opencl-vendors");
        try {
            List<String> cmd = new ArrayList<>();
            cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            cmd.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
            cmd.add("-cp");
            cmd.add(System.getProperty("java.class.path"));
            cmd.add(TornadoNoPlatformTest.class.getName());
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
            pb.environment().put("OCL_ICD_VENDORS", noVendors.toString());
            Process p = pb.start();
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("child JVM finished").isTrue();
            assertThat(output).contains("available=false");
            assertThat(output).contains("TornadoVM found no OpenCL platform").contains("install an OpenCL driver").doesNotContain("tornado-argfile");
        } finally {
            Files.deleteIfExists(noVendors);
        }
    }
}

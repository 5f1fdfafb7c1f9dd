package io.tessera.bench.peers;

import io.tessera.bench.MainJob;
import io.tessera.bench.kernel.AttentionBenchmark;
import io.tessera.bench.report.Measurement;
import io.tessera.bench.report.OracleCheck;
import io.tessera.bench.report.OracleReference;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.tensor.Tensor;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * PyTorch from Debian ({@code python3-torch}, 1.13 with OpenBLAS) as the classic Python baseline,
 * run as a subprocess with a JSON request: it times its own calls (2 warm-up, median of the rest)
 * and returns a small check case that is compared with the float64 oracle here.
 */
public final class PythonTorchPeer {
    private final String interpreter, version;

    private PythonTorchPeer(String interpreter, String version) {
        this.interpreter = interpreter;
        this.version = version;
    }

    public record TorchCase(String pattern, int n, int headDim, int threads) {}

    /** The peer when {@code python3 -c 'import torch'} works, else null with a note saying how to get it. */
    public static PythonTorchPeer detect(List<String> notes) {
        // Debian's python3-torch lives in the system interpreter, which a pyenv shim may shadow.
        for (String python : List.of("/usr/bin/python3", "python3")) {
            try {
                Process p = python(List.of(python, "-c", "import torch; print(torch.__version__)")).start();
                String out = new String(p.getInputStream().readAllBytes()).strip();
                if (p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0) return new PythonTorchPeer(python, out);
            } catch (Exception e) {
                // try the next interpreter
            }
        }
        notes.add("PyTorch (python) peer skipped: no python3 here can import torch (Debian: apt-get install python3-torch libopenblas0-pthread)");
        return null;
    }

    /**
     * OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set on this machine to work around old OpenBLAS
     * bugs; they also pin a slower kernel, so the peer runs without them, as its users would.
     */
    private static ProcessBuilder python(List<String> command) {
        ProcessBuilder pb = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD);
        pb.environment().remove("OPENBLAS_CORETYPE");
        pb.environment().remove("OPENBLAS_L2_SIZE");
        return pb;
    }

    public List<Measurement> measure(List<TorchCase> cases, List<String> notes, List<OracleCheck> checks) throws Exception {
        String label = "PyTorch " + version + " (python, bmm+softmax)";
        int n = MainJob.CHECK_N, h = MainJob.CHECK_HEADS, d = MainJob.CHECK_DIM;
        List<String> patterns = List.of("dense", "causal", "window256");
        StringBuilder request = new StringBuilder("{\"check\":{\"heads\":" + h + ",\"n\":" + n + ",\"headDim\":" + d + ",\"patterns\":[\"dense\",\"causal\",\"window256\"]");
        try (Arena arena = Arena.ofConfined()) {
            Tensor[] qkv = MainJob.checkInputs(arena);
            request.append(",\"q\":").append(Arrays.toString(qkv[0].toArray())).append(",\"k\":").append(Arrays.toString(qkv[1].toArray()))
                    .append(",\"v\":").append(Arrays.toString(qkv[2].toArray())).append("}");
        }
        // Before python starts timing its calls (the forward checks computed them already in a main job).
        List<OracleReference<DenseReference.Result>> references = MainJob.checkOracles(patterns);
        request.append(",\"cases\":[");
        for (int c = 0; c < cases.size(); c++) {
            TorchCase tc = cases.get(c);
            request.append(c == 0 ? "" : ",").append(String.format(Locale.ROOT, "{\"pattern\":\"%s\",\"n\":%d,\"headDim\":%d,\"heads\":%d,\"threads\":%d,\"repeats\":%d}",
                    tc.pattern(), tc.n(), tc.headDim(), AttentionBenchmark.HEADS, tc.threads(), tc.n() >= 4096 ? 3 : 5));
        }
        request.append("]}");

        Path script = Files.createTempFile("torch_peer", ".py");
        try (InputStream in = PythonTorchPeer.class.getResourceAsStream("torch_peer.py")) {
            Files.write(script, in.readAllBytes());
        }
        io.tessera.bench.Trace.mark("python peer's request and oracles ready");
        System.out.println("[torch ] running " + cases.size() + " cases in python3 (PyTorch " + version + ") ...");
        Process p = python(List.of(interpreter, script.toString())).start();
        p.getOutputStream().write(request.toString().getBytes());
        p.getOutputStream().close();
        String reply = new String(p.getInputStream().readAllBytes());
        io.tessera.bench.Trace.mark("python peer answered");
        if (!p.waitFor(30, TimeUnit.MINUTES) || p.exitValue() != 0) {
            notes.add("PyTorch (python) peer failed (exit " + p.exitValue() + ")");
            return List.of();
        }
        Files.deleteIfExists(script);

        for (int c = 0; c < patterns.size(); c++) {
            float[] out = floats(section(reply, "\"" + patterns.get(c) + "\": ["));
            checks.add(new OracleCheck(label, patterns.get(c), n, Tolerance.maxError(out, references.get(c).oracle().output()), references.get(c).tolerance()));
        }
        List<Measurement> ms = new ArrayList<>();
        Matcher m = Pattern.compile("\\{\"pattern\": \"(\\w+)\", \"n\": (\\d+), \"headDim\": (\\d+), \"heads\": \\d+, \"threads\": (\\d+), \"repeats\": \\d+, \"ms\": ([0-9.eE+-]+), \"msMin\": ([0-9.eE+-]+), \"msMax\": ([0-9.eE+-]+)\\}").matcher(reply);
        while (m.find()) {
            String pattern = m.group(1);
            int n2 = Integer.parseInt(m.group(2)), d2 = Integer.parseInt(m.group(3)), t = Integer.parseInt(m.group(4));
            double ms2 = Double.parseDouble(m.group(5)), spread = (Double.parseDouble(m.group(7)) - Double.parseDouble(m.group(6))) / 2;
            ms.add(new Measurement("torch-python", label, pattern, n2, t, ms2, spread, MainJob.flops(pattern, n2, d2) / (ms2 * 1e6), Double.NaN));
        }
        notes.add(label + ": timed inside python (2 warm-up calls, median of 3–5); heap figures n/a. " + configLine(reply));
        return ms;
    }

    private static String configLine(String reply) {
        Matcher m = Pattern.compile("\"config\": \\[([^\\]]*)\\]").matcher(reply);
        return m.find() ? m.group(1).replace("\"", "").replaceAll("\\s+", " ") : "";
    }

    private static String section(String json, String start) {
        int a = json.indexOf(start);
        if (a < 0) throw new IllegalStateException("torch peer reply lacks " + start);
        a += start.length();
        return json.substring(a, json.indexOf(']', a));
    }

    private static float[] floats(String csv) {
        String[] parts = csv.split(",");
        float[] out = new float[parts.length];
        for (int i = 0; i < parts.length; i++) out[i] = Float.parseFloat(parts[i].strip());
        return out;
    }

    @Override
    public String toString() { return "PyTorch " + version + " (python)"; }

}

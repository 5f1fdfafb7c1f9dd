package io.tessera.tornado;

import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.Backend;
import io.tessera.backend.GradientGeometry;
import io.tessera.cpu.GemmCall;
import io.tessera.layout.HeadLayouts;
import io.tessera.layout.CsrMatrix;
import io.tessera.variant.sparse.SparseAttention;
import io.tessera.backend.SparseAttentionDevice;
import io.tessera.backend.PagedAttentionDevice;
import io.tessera.pattern.DecodePlan;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.TornadoDeviceType;
import uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider;

/**
 * The {@code tornado} backend: Tessera's kernels offloaded through TornadoVM to an OpenCL (or other
 * TornadoVM) device, selected by {@code -Dtessera.tornado.device=backend:device} (default: TornadoVM's
 * default device) or {@link #onDevice}. Registered through {@link java.util.ServiceLoader}; available
 * only when the JVM runs with TornadoVM's flags ({@code java @$TORNADOVM_HOME/tornado-argfile …}) and
 * a device is present.
 *
 * <p>Tensors are wrapped, not copied: a tensor's storage keeps a 16-byte header slot in front of its
 * data, which is exactly what {@code FloatArray.fromSegmentShallow} expects. Execution plans are built
 * once per (kernel, shapes, layouts, tensors) and cached; layouts travel to the device on a plan's
 * first execution only. {@link #lastRun()} reports what the last call did on the device.
 */
public final class TornadoBackend implements Backend, SparseAttentionDevice, PagedAttentionDevice {
    /** Device priority: a GPU or accelerator beats the Vector API backend (10); an OpenCL CPU device does not. */
    private static final int ACCELERATOR_PRIORITY = 20, CPU_DEVICE_PRIORITY = 5;

    private final int backendIndex, deviceIndex;
    private final Probe probe;
    /** Why TornadoVM's runtime failed to start in this JVM (null: it has not failed). */
    private static String startFailure;

    /** ServiceLoader constructor: the device named by {@code tessera.tornado.device}, else TornadoVM's default. */
    public TornadoBackend() {
        this(Probe.requested());
    }

    private TornadoBackend(Probe probe) {
        this.probe = probe;
        this.backendIndex = probe.backendIndex;
        this.deviceIndex = probe.deviceIndex;
    }

    /** The backend on TornadoVM device {@code backendIndex:deviceIndex}; throws naming the devices present if there is none. */
    public static TornadoBackend onDevice(int backendIndex, int deviceIndex) {
        Probe p = Probe.of(backendIndex, deviceIndex);
        if (p.device == null) throw new IllegalArgumentException(p.reason);
        return new TornadoBackend(p);
    }

    /** Every device TornadoVM sees, as "backend:device name (type)"; empty without TornadoVM. */
    public static List<String> devices() {
        List<String> all = new ArrayList<>();
        try {
            var runtime = TornadoRuntimeProvider.getTornadoRuntime();
            for (int b = 0; b < runtime.getNumBackends(); b++) {
                var backend = runtime.getBackend(b);
                for (int d = 0; d < backend.getNumDevices(); d++) {
                    TornadoDevice dev = backend.getDevice(d);
                    all.add(b + ":" + d + " " + dev.getPhysicalDevice().getDeviceName() + " (" + dev.getDeviceType() + ")");
                }
            }
        } catch (Throwable notLaunchedWithTornado) {
            // devices() answers "none" rather than failing: the caller asked what is here.
        }
        return all;
    }

    @Override public String name() { return "tornado"; }

    @Override
    public String description() {
        if (probe.device == null) return "unavailable: " + probe.reason;
        return "TornadoVM device " + backendIndex + ":" + deviceIndex + " " + probe.device.getPhysicalDevice().getDeviceName()
                + " (" + probe.device.getDeviceType() + (isCpuDevice() ? ", an OpenCL CPU device, not a GPU" : "") + ")";
    }

    @Override public boolean isAvailable() { return probe.device != null; }

    @Override public int priority() { return isCpuDevice() ? CPU_DEVICE_PRIORITY : ACCELERATOR_PRIORITY; }

    private boolean isCpuDevice() {
        return probe.device != null && probe.device.getDeviceType() == TornadoDeviceType.CPU;
    }

    /** One work-group per query block: as tall as the largest group the kernel's local arrays hold. */
    @Override public int preferredBlockQ() { return AttentionKernel.MAX_WORK_GROUP; }

    @Override public int preferredBlockKV() { return 64; }

    /** The device decides its own parallelism: the same backend for any thread count. */
    @Override
    public Backend withThreads(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        return this;
    }

    TornadoDevice device() {
        if (probe.device == null) throw new IllegalStateException("backend 'tornado' is not available here: " + probe.reason);
        return probe.device;
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) {
        attention(q, k, v, layouts, scale, null, out, lse);
    }

    /**
     * The fused kernel with a score modifier (null: none). The built-in modifiers (ALiBi, relative
     * bias tables, soft-capping, additive biases, and their compositions) run on the device; a user
     * function ({@code ScoreMod.of}) is rejected, naming it: the device cannot call back into Java.
     */
    @Override
    public void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, ScoreMod mod, Tensor out, Tensor lse) {
        DevicePlans.startCall();
        requireF32(q, k, v, out, lse);
        AttentionGeometry g = AttentionGeometry.checked(q, k, v, layouts, scale, out, lse);
        var s = g.shape();
        ScoreMod.Plan mods = mod == null ? null : mod.plan(s.heads(), s.qLen(), s.kvLen(), 0);
        DevicePlans.attention(device(), g, q, k, v, layouts, mods, out, lse);
    }

    /** The device backward pass ({@link AttentionBackwardKernel}) without a score modifier. */
    @Override
    public void attentionBackward(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse,
                                  Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        attentionBackward(q, k, v, layouts, scale, null, out, lse, dOut, dq, dk, dv, List.of());
    }

    /**
     * The device backward pass: dq by a query-major kernel, dk and dv (summed over the query heads
     * that share a key/value head) by a key-major one, both recomputing the probabilities from the
     * forward's LSE; deterministic, no atomics. Through the built-in modifiers too, a learnable
     * relative-bias table's gradient included (per-key-block partial sums on the device, added on
     * the host in a fixed order). A user function is rejected by name, as in the forward pass.
     * Every tensor F32.
     */
    @Override
    public void attentionBackward(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, ScoreMod mod, Tensor out, Tensor lse,
                                  Tensor dOut, Tensor dq, Tensor dk, Tensor dv, List<Tensor> dParameters) {
        DevicePlans.startCall();
        GradientGeometry gg = GradientGeometry.checked(q, k, v, layouts, scale, out, lse, dOut, dq, dk, dv);
        requireF32(new String[] {"q", "k", "v", "out", "lse", "dOut", "dq", "dk", "dv"}, q, k, v, out, lse, dOut, dq, dk, dv);
        var s = gg.shape();
        ScoreMod.Plan mods = mod == null ? null : mod.plan(s.heads(), s.qLen(), s.kvLen(), 0);
        GradientGeometry.checkParameterGradients(mod, dParameters, q, k, v, out, lse, dOut, dq, dk, dv);
        DevicePlans.backward(device(), gg, q, k, v, layouts, mods, out, lse, dOut, dq, dk, dv, dParameters);
    }

    @Override
    public void gemm(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta) {
        DevicePlans.startCall();
        requireF32(a, b, c);
        GemmCall call = GemmCall.of(a, transposeA, b, transposeB, c, alpha, beta);
        DevicePlans.gemm(device(), call, a, b, c);
    }

    /** The explicit sparse path (SDDMM → row softmax → SpMM) as two device kernels. */
    @Override
    public void sparseAttention(Tensor q, Tensor k, Tensor v, CsrMatrix pattern, float scale, Tensor out, Tensor lse) {
        DevicePlans.startCall();
        requireF32(q, k, v, out, lse);
        AttentionGeometry g = SparseAttention.checked(q, k, v, pattern, scale, out, lse);
        DevicePlans.sparse(device(), g, q, k, v, pattern, out, lse);
    }

    /**
     * The device decode kernel ({@link DecodeKernel}): one execution plan per (shape, page size,
     * pool, cache type, modifier kinds) serves every live length; the key and value pools stay on
     * the device across steps and only the tokens appended since the last step (by the cache's
     * write record {@code pageGenerations}) are copied to it. Caches of F32, F16 or BF16 (half
     * pools stay 16-bit on the device), queries of any type, F32 outputs. The plan's built-in
     * score modifiers run on the device; a user function is rejected by name. The device reads the
     * step's pages and masks as one layout per sequence, built from the plan for the call.
     */
    @Override
    public void pagedAttention(Tensor q, Tensor keyPool, Tensor valuePool, int[][] pageTables, DecodePlan plan,
                               long[] pageGenerations, float scale, Tensor out, Tensor lse) {
        if (plan == null) throw new NullPointerException("plan");
        DevicePlans.startCall();
        DevicePlans.record(DeviceDecode.run(device(), q, keyPool, valuePool, plan, pageTables, plan.layouts(), pageGenerations, scale, out, lse));
    }

    /**
     * The device kernels read and write float32 ({@code FloatArray}): a BF16 or F16 tensor is
     * rejected up front, naming it and its type. TornadoVM 5.2 has {@code HalfFloatArray} (its
     * kernels compute in OpenCL {@code half}, which needs the device's cl_khr_fp16) and
     * {@code BFloat16Array} (device kernels on its CUDA backend only); Tessera's fused, GEMM and
     * sparse kernels take neither (its decode kernel reads half caches as raw 16-bit patterns).
     */
    private static void requireF32(Tensor... tensors) {
        requireF32(tensors.length == 3 ? new String[] {"a", "b", "c"} : new String[] {"q", "k", "v", "out", "lse"}, tensors);
    }

    private static void requireF32(String[] names, Tensor... tensors) {
        for (int i = 0; i < tensors.length; i++) {
            Tensor t = tensors[i];
            if (t != null && t.type() != ElementType.F32) {
                throw new IllegalArgumentException(names[i] + " has element type " + t.type() + " but backend 'tornado' reads and writes F32 only"
                        + " (its device kernels take TornadoVM FloatArrays; none takes HalfFloatArray or BFloat16Array yet): convert it with "
                        + names[i] + ".to(arena, ElementType.F32), or use the 'simd' or 'scalar' backend, which read " + t.type() + " directly");
            }
        }
    }

    /**
     * Declares tensors whose contents stay fixed while pinned (projection weights, a KV cache):
     * execution plans send them to the device on their first execution only, instead of on every
     * call. After writing a pinned tensor, pin it again (new plans send the new contents) or unpin
     * it. Outputs are always copied, pinned or not.
     */
    public void pin(Tensor... constants) {
        for (Tensor t : constants) DevicePlans.pin(t);
    }

    /** Undoes {@link #pin}: the tensors travel on every call again. */
    public void unpin(Tensor... tensors) {
        for (Tensor t : tensors) DevicePlans.unpin(t);
    }

    /**
     * What the last call on this thread did on the device. Every call clears the record first, so
     * after a call that failed, or never reached the device, this throws rather than answering with
     * an earlier call's record.
     */
    public static DeviceRun lastRun() { return DevicePlans.lastRun(); }

    @Override public String toString() { return name() + " (" + description() + ")"; }

    /** The device a backend was asked for, or why there is none. */
    private record Probe(int backendIndex, int deviceIndex, TornadoDevice device, String reason) {

        static Probe requested() {
            String spec = System.getProperty("tessera.tornado.device");
            if (spec == null) return of(-1, -1);
            String[] parts = spec.split(":");
            try {
                if (parts.length != 2) throw new NumberFormatException();
                return of(Integer.parseInt(parts[0].trim()), Integer.parseInt(parts[1].trim()));
            } catch (NumberFormatException e) {
                return new Probe(-1, -1, null, "tessera.tornado.device must be 'backend:device' (e.g. 0:0), got '" + spec + "'");
            }
        }

        /** Indices −1, −1 mean TornadoVM's default device. */
        static Probe of(int backendIndex, int deviceIndex) {
            try {
                var runtime = TornadoRuntimeProvider.getTornadoRuntime();
                if (runtime.getNumBackends() == 0) return new Probe(backendIndex, deviceIndex, null, "TornadoVM found no backend (no OpenCL/PTX/SPIR-V driver)");
                if (backendIndex < 0) {
                    TornadoDevice d = runtime.getDefaultDevice();
                    return new Probe(0, 0, d, null);
                }
                if (backendIndex >= runtime.getNumBackends() || deviceIndex < 0 || deviceIndex >= runtime.getBackend(backendIndex).getNumDevices()) {
                    return new Probe(backendIndex, deviceIndex, null, "no TornadoVM device " + backendIndex + ":" + deviceIndex + "; devices: " + devices());
                }
                return new Probe(backendIndex, deviceIndex, runtime.getBackend(backendIndex).getDevice(deviceIndex), null);
            } catch (LinkageError | RuntimeException e) {
                return new Probe(backendIndex, deviceIndex, null, firstStartFailure(e));
            }
        }

        /**
         * TornadoVM's runtime initializes once per JVM: after a failed first attempt, later ones only
         * see "Could not initialize class", without the cause. The first attempt's reason is kept.
         */
        private static synchronized String firstStartFailure(Throwable e) {
            if (startFailure == null) startFailure = whyNotStarted(e);
            return startFailure;
        }

        /**
         * Why TornadoVM did not start, blaming the right thing: its classes missing (the JVM was not
         * started with the SDK's argfile), no OpenCL platform (no driver installed), or else the
         * error itself, causes included.
         */
        static String whyNotStarted(Throwable e) {
            try {
                Class.forName("uk.ac.manchester.tornado.runtime.TornadoCoreRuntime", false, TornadoBackend.class.getClassLoader());
            } catch (ClassNotFoundException | LinkageError missing) {
                return "TornadoVM runtime not loaded (run with java @$TORNADOVM_HOME/tornado-argfile)";
            }
            StringBuilder causes = new StringBuilder();
            boolean noPlatform = false;
            for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
                causes.append(causes.isEmpty() ? "" : " <- ").append(c);
                noPlatform |= c.getMessage() != null && c.getMessage().contains("No OpenCL platforms found");
            }
            if (noPlatform) {
                return "TornadoVM found no OpenCL platform: install an OpenCL driver (the GPU vendor's, or PoCL, package pocl-opencl-icd,"
                        + " for an OpenCL CPU device; clinfo lists what is installed) (" + causes + ")";
            }
            return "TornadoVM failed to start: " + causes;
        }
    }
}

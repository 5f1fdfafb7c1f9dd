package io.tessera.bench.peers;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import java.nio.FloatBuffer;
import java.util.Locale;

/**
 * PyTorch 2.7.1 through DJL 0.36, run as TorchScript as {@link DjlSdpaPeer} is, for the score-modifier
 * and half-precision comparisons:
 * <ul>
 * <li>ALiBi: {@code scaled_dot_product_attention(q, k, v, attn_mask)} with the bias as a float mask
 * {@code [1, H, n, n]} (slope·(j − i), −∞ where the pattern excludes the pair), as PyTorch users add a
 * bias; a float mask takes SDPA's CPU flash kernel too, it adds the mask to each score tile.</li>
 * <li>Soft-capping (alone or after ALiBi): SDPA cannot apply a function to the scores, so the module
 * spells it out as eager PyTorch does (Gemma 2's reference code): matmul, (+ bias), cap·tanh(s/cap),
 * masked_fill, softmax, matmul.</li>
 * <li>bf16: the plain SDPA call on q, k, v converted to bfloat16 once at prepare time (round to
 * nearest even, as Tessera's {@code Tensor.to(BF16)}); the bf16 output is widened to float32 only
 * to be checked, outside the timed call.</li>
 * </ul>
 */
public final class DjlSdpaVariantPeer implements SdpaVariantPeer {
    private static final String HEADER = """
            class SDPAVariant(Module):
              __parameters__ = []
              __buffers__ = []
              training : bool
              _is_full_backward_hook : Optional[bool]
              def forward(self: __torch__.SDPAVariant,
                q: Tensor,
                k: Tensor,
                v: Tensor,
                bias: Tensor,
                blocked: Tensor) -> Tensor:
            """;

    private Model model, toBf16, toF32;
    private Block block;
    private NDManager manager;
    private NDArray q, k, v, bias, blocked, out;
    private String path = "";

    @Override public String name() { return "DJL 0.36 + PyTorch " + Engine.getEngine("PyTorch").getVersion() + " (" + path + ")"; }

    @Override public String id() { return "djl-sdpa-variant"; }

    @Override
    public String unavailableReason() { return DjlPyTorchPeer.pyTorchUnavailableReason(); }

    @Override
    public void prepare(int heads, int n, int headDim, float[] qa, float[] ka, float[] va, boolean[] allowed,
                        float[] slopes, float softCap, boolean bf16, int threads) throws Exception {
        close();
        if (slopes != null && slopes.length != heads) throw new IllegalArgumentException("alibiSlopes has " + slopes.length + " slopes for " + heads + " heads");
        if (bf16 && (slopes != null || !Float.isNaN(softCap))) throw new IllegalArgumentException("bf16 is measured without modifiers (plain SDPA)");
        if (!Float.isNaN(softCap) && !(softCap > 0)) throw new IllegalArgumentException("softCap must be > 0 or NaN, got " + softCap);
        DjlPyTorchPeer.useThreads(threads);
        boolean causal = allowed != null && isCausal(allowed, n), capped = !Float.isNaN(softCap);
        String body;
        if (capped) {
            path = (slopes != null ? "bias + " : "") + "tanh soft-cap, matmul/softmax";
            body = "    s = torch.mul(torch.matmul(q, torch.transpose(k, -2, -1)), " + literal(1 / Math.sqrt(headDim)) + ")\n"
                    + (slopes != null ? "    s = torch.add(s, bias)\n" : "")
                    + "    s = torch.mul(torch.tanh(torch.div(s, " + literal(softCap) + ")), " + literal(softCap) + ")\n"
                    + (allowed != null ? "    s = torch.masked_fill(s, blocked, float(\"-inf\"))\n" : "")
                    + "    return torch.matmul(torch.softmax(s, -1), v)\n";
        } else if (slopes != null) {
            path = "scaled_dot_product_attention, float bias mask";
            body = "    return torch.scaled_dot_product_attention(q, k, v, bias)\n";
        } else if (causal) {
            path = "scaled_dot_product_attention, is_causal" + (bf16 ? ", bf16" : "");
            body = "    return torch.scaled_dot_product_attention(q, k, v, None, 0., True)\n";
        } else if (allowed != null) {
            path = "scaled_dot_product_attention, boolean mask" + (bf16 ? ", bf16" : "");
            body = "    return torch.scaled_dot_product_attention(q, k, v, torch.logical_not(blocked))\n";
        } else {
            path = "scaled_dot_product_attention" + (bf16 ? ", bf16" : "");
            body = "    return torch.scaled_dot_product_attention(q, k, v)\n";
        }
        model = DjlSdpaPeer.loadModule("sdpavariant", "SDPAVariant", HEADER + body);
        block = model.getBlock();
        manager = Engine.getEngine("PyTorch").newBaseManager();
        Shape shape = new Shape(1, heads, n, headDim);
        q = manager.create(FloatBuffer.wrap(qa), shape);
        k = manager.create(FloatBuffer.wrap(ka), shape);
        v = manager.create(FloatBuffer.wrap(va), shape);
        if (bf16) {
            toBf16 = castModule("tobf16", BFLOAT16);
            toF32 = castModule("tof32", FLOAT32);
            q = cast(toBf16, q);
            k = cast(toBf16, k);
            v = cast(toBf16, v);
        }
        if (slopes != null) {
            // The bias as PyTorch users pass it: one float per (head, query, key), −∞ where the pattern
            // excludes the pair when SDPA takes it as its mask (soft-capping masks after the cap instead).
            float[] b = new float[Math.multiplyExact(heads, Math.multiplyExact(n, n))];
            for (int h = 0; h < heads; h++) for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) {
                boolean excluded = !capped && allowed != null && !allowed[i * n + j];
                b[(h * n + i) * n + j] = excluded ? Float.NEGATIVE_INFINITY : (float) ((double) slopes[h] * (j - i));
            }
            bias = manager.create(FloatBuffer.wrap(b), new Shape(1, heads, n, n));
        } else {
            bias = manager.create(new float[0], new Shape(0));
        }
        if (allowed != null) {
            boolean[] x = new boolean[allowed.length];
            for (int i = 0; i < x.length; i++) x[i] = !allowed[i];
            blocked = manager.create(x, new Shape(n, n));
        } else {
            blocked = manager.create(new boolean[0], new Shape(0));
        }
    }

    /** PyTorch's ScalarType codes (c10/core/ScalarType.h). */
    private static final int FLOAT32 = 6, BFLOAT16 = 15;

    /**
     * A module that converts a tensor to the ScalarType {@code type}: DJL 0.36 cannot create or
     * convert to bfloat16 itself (its {@code toType(BFLOAT16)} aborts the JVM in libtorch), but it
     * carries a bf16 tensor a module returns (as data type "unknown") into the next module.
     */
    private Model castModule(String name, int type) throws Exception {
        String className = name.substring(0, 1).toUpperCase(Locale.ROOT) + name.substring(1);
        return DjlSdpaPeer.loadModule(name, className, """
                class %s(Module):
                  __parameters__ = []
                  __buffers__ = []
                  training : bool
                  _is_full_backward_hook : Optional[bool]
                  def forward(self: __torch__.%s,
                    x: Tensor) -> Tensor:
                    return torch.to(x, %d)
                """.formatted(className, className, type));
    }

    private NDArray cast(Model module, NDArray x) {
        return module.getBlock().forward(new ParameterStore(manager, false), new NDList(x), false).singletonOrThrow();
    }

    private static String literal(double x) { return String.format(Locale.ROOT, "%.17g", x); }

    private static boolean isCausal(boolean[] allowed, int n) {
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) if (allowed[i * n + j] != (j <= i)) return false;
        return true;
    }

    @Override
    public void run() {
        if (out != null) out.close();
        out = block.forward(new ParameterStore(manager, false), new NDList(q, k, v, bias, blocked), false).singletonOrThrow();
    }

    @Override
    public float[] output() {
        return toF32 == null ? out.toFloatArray() : cast(toF32, out).toFloatArray();
    }

    @Override
    public void close() {
        if (manager != null) manager.close();
        if (model != null) model.close();
        if (toBf16 != null) toBf16.close();
        if (toF32 != null) toF32.close();
        manager = null;
        model = null;
        toBf16 = null;
        toF32 = null;
        out = null;
    }
}

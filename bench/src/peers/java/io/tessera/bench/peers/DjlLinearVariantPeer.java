package io.tessera.bench.peers;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import io.tessera.bench.variants.LinearVariantPeer;
import java.nio.FloatBuffer;
import java.util.Locale;

/**
 * The linear-time variants written with PyTorch 2.7.1 operations, as a user of that stack writes
 * them (matmul, softmax, exp, elu, sums), run as TorchScript through DJL 0.36 like
 * {@link DjlSdpaPeer}:
 * <ul>
 * <li>Linformer: K' = E·K, V' = F·V, then scaled_dot_product_attention(q, K', V').</li>
 * <li>Performer (FAVOR+): u = q·ωᵀ − ‖q‖²/(2√D); query features exp(u − rowmax u), key features
 * exp(u − max over all keys of the head) (the reference implementation's stabilizers, which cancel);
 * out = φ(q)(φ(k)ᵀv) / φ(q)(φ(k)ᵀ1).</li>
 * <li>Linear attention: φ = elu + 1, the same two products.</li>
 * <li>Nyström: landmarks as segment means (reshape + mean), three softmaxes, the iterative
 * pseudo-inverse Z ← ¼Z(13I − AZ(15I − AZ(7I − AZ))) from Aᵀ/(‖A‖₁‖A‖∞), six iterations.</li>
 * </ul>
 */
public final class DjlLinearVariantPeer implements LinearVariantPeer {
    private static final String HEADER = """
            class LinearVariant(Module):
              __parameters__ = []
              __buffers__ = []
              training : bool
              _is_full_backward_hook : Optional[bool]
              def forward(self: __torch__.LinearVariant,
                q: Tensor,
                k: Tensor,
                v: Tensor,
                p1: Tensor,
                p2: Tensor) -> Tensor:
            """;

    private Model model;
    private Block block;
    private NDManager manager;
    private NDArray q, k, v, p1, p2, out;

    @Override public String id() { return "djl-linear-variants"; }

    @Override public String name() { return "DJL 0.36 + PyTorch " + Engine.getEngine("PyTorch").getVersion() + " (torch ops, TorchScript)"; }

    @Override public String unavailableReason() { return DjlPyTorchPeer.pyTorchUnavailableReason(); }

    static String source(String variant, int n, int headDim, int landmarks) {
        String scale = literal(1 / Math.sqrt(headDim));
        return switch (variant) {
            case "linformer" -> """
                    kp = torch.matmul(p1, k)
                    vp = torch.matmul(p2, v)
                    return torch.scaled_dot_product_attention(q, kp, vp)
                """;
            case "performer" -> """
                    qu = torch.sub(torch.matmul(q, torch.transpose(p1, 0, 1)), torch.mul(torch.sum(torch.mul(q, q), [-1], True), %s))
                    ku = torch.sub(torch.matmul(k, torch.transpose(p1, 0, 1)), torch.mul(torch.sum(torch.mul(k, k), [-1], True), %s))
                    qf = torch.exp(torch.sub(qu, torch.amax(qu, [-1], True)))
                    kf = torch.exp(torch.sub(ku, torch.amax(ku, [-2, -1], True)))
                    kv = torch.matmul(torch.transpose(kf, -2, -1), v)
                    z = torch.sum(kf, [-2], False)
                    den = torch.matmul(qf, torch.unsqueeze(z, -1))
                    return torch.div(torch.matmul(qf, kv), den)
                """.formatted(literal(0.5 / Math.sqrt(headDim)), literal(0.5 / Math.sqrt(headDim)));
            case "linear-attention" -> """
                    qf = torch.add(torch.elu(q), 1)
                    kf = torch.add(torch.elu(k), 1)
                    kv = torch.matmul(torch.transpose(kf, -2, -1), v)
                    z = torch.sum(kf, [-2], False)
                    den = torch.matmul(qf, torch.unsqueeze(z, -1))
                    return torch.div(torch.matmul(qf, kv), den)
                """;
            case "nystrom" -> """
                    ql = torch.mean(torch.reshape(q, [q.size(0), q.size(1), %d, %d, q.size(3)]), [-2], False)
                    kl = torch.mean(torch.reshape(k, [k.size(0), k.size(1), %d, %d, k.size(3)]), [-2], False)
                    f = torch.softmax(torch.mul(torch.matmul(q, torch.transpose(kl, -2, -1)), %s), -1)
                    a = torch.softmax(torch.mul(torch.matmul(ql, torch.transpose(kl, -2, -1)), %s), -1)
                    b = torch.softmax(torch.mul(torch.matmul(ql, torch.transpose(k, -2, -1)), %s), -1)
                    i = torch.eye(%d, dtype=6)
                    norm1 = torch.amax(torch.sum(torch.abs(a), [-2], False), [-1], True)
                    norminf = torch.amax(torch.sum(torch.abs(a), [-1], False), [-1], True)
                    z = torch.div(torch.transpose(a, -2, -1), torch.unsqueeze(torch.mul(norm1, norminf), -1))
                    for _0 in range(6):
                      az = torch.matmul(a, z)
                      t = torch.sub(torch.mul(i, 7), az)
                      t = torch.sub(torch.mul(i, 15), torch.matmul(az, t))
                      t = torch.sub(torch.mul(i, 13), torch.matmul(az, t))
                      z = torch.mul(torch.matmul(z, t), 0.25)
                    return torch.matmul(f, torch.matmul(z, torch.matmul(b, v)))
                """.formatted(landmarks, n / landmarks, landmarks, n / landmarks, scale, scale, scale, landmarks);
            default -> throw new IllegalArgumentException("unknown variant " + variant + "; known: " + VARIANTS);
        };
    }

    @Override
    public void prepare(String variant, int heads, int n, int headDim, float[] qa, float[] ka, float[] va, float[][] parameters, int threads) throws Exception {
        close();
        int landmarks = variant.equals("nystrom") ? (int) parameters[0][0] : 0;
        if (variant.equals("nystrom") && (landmarks < 1 || n % landmarks != 0)) {
            throw new IllegalArgumentException("nystrom: n=" + n + " must be a multiple of the landmarks m=" + landmarks);
        }
        DjlPyTorchPeer.useThreads(threads);
        model = DjlSdpaPeer.loadModule("linearvariant", "LinearVariant", HEADER + source(variant, n, headDim, landmarks));
        block = model.getBlock();
        manager = Engine.getEngine("PyTorch").newBaseManager();
        Shape shape = new Shape(1, heads, n, headDim);
        q = manager.create(FloatBuffer.wrap(qa), shape);
        k = manager.create(FloatBuffer.wrap(ka), shape);
        v = manager.create(FloatBuffer.wrap(va), shape);
        switch (variant) {
            case "linformer" -> {
                int kp = parameters[0].length / (heads * n);
                p1 = manager.create(FloatBuffer.wrap(parameters[0]), new Shape(1, heads, kp, n));
                p2 = manager.create(FloatBuffer.wrap(parameters[1]), new Shape(1, heads, kp, n));
            }
            case "performer" -> {
                p1 = manager.create(FloatBuffer.wrap(parameters[0]), new Shape(parameters[0].length / headDim, headDim));
                p2 = manager.create(new float[0], new Shape(0));
            }
            default -> {
                p1 = manager.create(new float[0], new Shape(0));
                p2 = manager.create(new float[0], new Shape(0));
            }
        }
    }

    private static String literal(double x) { return String.format(Locale.ROOT, "%.17g", x); }

    @Override
    public void run() {
        if (out != null) out.close();
        out = block.forward(new ParameterStore(manager, false), new NDList(q, k, v, p1, p2), false).singletonOrThrow();
    }

    @Override
    public float[] output() { return out.toFloatArray(); }

    @Override
    public void close() {
        if (manager != null) manager.close();
        if (model != null) model.close();
        manager = null;
        model = null;
        out = null;
    }
}

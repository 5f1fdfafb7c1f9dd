package io.tessera.bench.peers;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.training.GradientCollector;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.nio.FloatBuffer;

/**
 * PyTorch 2.7.1 through DJL 0.36 (native CPU build from Maven Central, loaded offline), as a DJL
 * NDArray user writes attention: {@code softmax(Q·Kᵀ·scale + bias)·V} with matMul/softmax, i.e.
 * PyTorch's bmm path; intermediates are closed right after use. {@link DjlSdpaPeer} runs PyTorch's
 * fused {@code scaled_dot_product_attention} instead.
 */
public final class DjlPyTorchPeer implements TrainingPeer {
    private NDManager manager;
    private NDArray q, k, kt, v, bias, out, dOut;
    private NDArray[] gradients;
    private float scale;

    @Override public String name() { return "DJL 0.36 + PyTorch " + Engine.getEngine("PyTorch").getVersion() + " (matMul/softmax)"; }

    @Override public String id() { return "djl-pytorch"; }

    @Override
    public String unavailableReason() { return pyTorchUnavailableReason(); }

    /** Null when PyTorch loads through DJL here (offline, from the bundled native library), else why not: every DJL peer's check. */
    static String pyTorchUnavailableReason() {
        try {
            configureOffline(Runtime.getRuntime().availableProcessors());
            Engine.getEngine("PyTorch");
            return null;
        } catch (Throwable t) {
            return "PyTorch through DJL did not load: " + t;
        }
    }

    /** Natives come from the pytorch-native-cpu jar on the class path, never from the network. */
    static void configureOffline(int threads) {
        System.setProperty("ai.djl.offline", "true");
        System.setProperty("ai.djl.pytorch.num_threads", String.valueOf(threads));
        System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
    }

    /**
     * The intra-op thread count of the running engine: the properties above only take effect when
     * the engine starts, which the availability check may already have done with every core.
     */
    static void useThreads(int threads) {
        configureOffline(threads);
        Engine.getEngine("PyTorch");
        ai.djl.pytorch.jni.JniUtils.setNumThreads(threads);
    }

    @Override
    public void prepare(int heads, int n, int headDim, float[] qa, float[] ka, float[] va, boolean[] mask, int threads) {
        close();
        useThreads(threads);
        manager = Engine.getEngine("PyTorch").newBaseManager();
        Shape shape = new Shape(1, heads, n, headDim);
        q = manager.create(FloatBuffer.wrap(qa), shape);
        k = manager.create(FloatBuffer.wrap(ka), shape);
        kt = k.transpose(0, 1, 3, 2);
        v = manager.create(FloatBuffer.wrap(va), shape);
        scale = (float) (1 / Math.sqrt(headDim));
        bias = null;
        if (mask != null) {
            float[] b = new float[n * n];
            for (int i = 0; i < b.length; i++) b[i] = mask[i] ? 0f : Float.NEGATIVE_INFINITY;
            bias = manager.create(FloatBuffer.wrap(b), new Shape(n, n));
        }
    }

    @Override
    public void run() {
        if (out != null) out.close();
        NDArray scores = q.matMul(kt).muli(scale);
        if (bias != null) scores.addi(bias);
        NDArray probabilities = scores.softmax(-1);
        scores.close();   // intermediates freed at once: PyTorch's caching allocator reuses them
        out = probabilities.matMul(v);
        probabilities.close();
    }

    @Override
    public float[] output() { return out.toFloatArray(); }

    @Override
    public void prepareGradient(float[] dOutValues) {
        dOut = manager.create(FloatBuffer.wrap(dOutValues), q.getShape());
        for (NDArray x : new NDArray[] {q, k, v}) x.setRequiresGradient(true);
    }

    /**
     * The same graph under DJL's gradient collector, then {@code backward} of Σ dOut ∘ out: PyTorch's
     * autograd through bmm and softmax, keeping the n×n probabilities for the backward as autograd does.
     */
    @Override
    public void step() {
        if (out != null) out.close();
        if (gradients != null) for (NDArray g : gradients) g.close();
        try (GradientCollector collector = manager.getEngine().newGradientCollector()) {
            collector.zeroGradients();
            NDArray keysT = k.transpose(0, 1, 3, 2), scores = q.matMul(keysT), scaled = scores.mul(scale);
            NDArray masked = bias == null ? scaled : scaled.add(bias), probabilities = masked.softmax(-1);
            out = probabilities.matMul(v);
            NDArray weighted = out.mul(dOut), loss = weighted.sum();
            collector.backward(loss);
            // Intermediates freed at once, after autograd used them: PyTorch's caching allocator reuses them.
            for (NDArray x : new NDArray[] {keysT, scores, scaled, masked, probabilities, weighted, loss}) if (!x.isReleased()) x.close();
        }
        gradients = new NDArray[] {q.getGradient(), k.getGradient(), v.getGradient()};
    }

    @Override
    public float[][] gradients() {
        return new float[][] {gradients[0].toFloatArray(), gradients[1].toFloatArray(), gradients[2].toFloatArray()};
    }

    @Override
    public void close() {
        if (manager != null) manager.close();
        manager = null;
        out = null;
    }
}

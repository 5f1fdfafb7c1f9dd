package io.tessera.bench.peers;

import ai.onnxruntime.OrtEnvironment;

/**
 * ONNX Runtime's fused {@code com.microsoft.MultiHeadAttention} operator (its CPU kernel), on the
 * op's [batch, seq, heads·D] layout; masks go in as an additive attention bias. Layout conversion
 * happens in {@code prepare} and {@code output}, outside the timed call.
 */
public final class OnnxRuntimeMhaPeer extends OnnxRuntimePeer {
    @Override public String name() { return "ONNX Runtime " + OrtEnvironment.getEnvironment().getVersion() + " (MultiHeadAttention op)"; }

    @Override public String id() { return "onnxruntime-mha"; }
    @Override public boolean fused() { return true; }

    @Override
    protected byte[] model(int heads, int n, int headDim, float scale, boolean masked) throws Exception {
        return OnnxModel.multiHeadAttention(heads, n, headDim, scale, masked);
    }

    @Override protected long[] tensorShape(int heads, int n, int headDim) { return new long[] {1, n, (long) heads * headDim}; }

    @Override protected long[] biasShape(int n) { return new long[] {1, 1, n, n}; }

    @Override
    protected float[] toModelLayout(float[] x, int heads, int n, int headDim) {
        float[] out = new float[x.length];
        for (int h = 0; h < heads; h++) for (int i = 0; i < n; i++) System.arraycopy(x, (h * n + i) * headDim, out, (i * heads + h) * headDim, headDim);
        return out;
    }

    @Override
    protected float[] fromModelLayout(float[] x, int heads, int n, int headDim) {
        float[] out = new float[x.length];
        for (int h = 0; h < heads; h++) for (int i = 0; i < n; i++) System.arraycopy(x, (i * heads + h) * headDim, out, (h * n + i) * headDim, headDim);
        return out;
    }
}

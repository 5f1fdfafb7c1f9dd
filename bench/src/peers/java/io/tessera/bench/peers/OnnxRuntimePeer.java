package io.tessera.bench.peers;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.HashMap;
import java.util.Map;

/**
 * ONNX Runtime Java (CPU execution provider) running a MatMul/Softmax/MatMul graph, configured as
 * its docs recommend for CPU inference: all graph optimizations, intra-op threads = the thread
 * count under test, sequential execution. Inputs and the output are direct buffers bound once
 * (output pinned), so calls reuse memory like Tessera's.
 */
public class OnnxRuntimePeer implements Peer {
    private OrtEnvironment env;
    private OrtSession session;
    private final Map<String, OnnxTensor> inputs = new HashMap<>();
    private OnnxTensor output;
    private FloatBuffer outputBuffer;
    private int heads, n, headDim;

    /** The ONNX model to run; inputs and output named q, k, v, [bias,] out. */
    protected byte[] model(int heads, int n, int headDim, float scale, boolean masked) throws Exception {
        return OnnxModel.attention(heads, n, headDim, scale, masked);
    }

    /** Shapes of q/k/v/out and of the mask bias in this model's layout. */
    protected long[] tensorShape(int heads, int n, int headDim) { return new long[] {1, heads, n, headDim}; }

    protected long[] biasShape(int n) { return new long[] {n, n}; }

    /** Converts [heads, n, D] data to this model's layout (identity here). */
    protected float[] toModelLayout(float[] x, int heads, int n, int headDim) { return x; }

    /** Converts this model's output back to [heads, n, D] (identity here). */
    protected float[] fromModelLayout(float[] x, int heads, int n, int headDim) { return x; }

    @Override public String name() { return "ONNX Runtime " + OrtEnvironment.getEnvironment().getVersion() + " (MatMul/Softmax)"; }

    @Override public String id() { return "onnxruntime"; }

    @Override
    public String unavailableReason() { return onnxRuntimeUnavailableReason(); }

    /** Null when ONNX Runtime's native library loads here, else why not (every ONNX Runtime peer asks this). */
    static String onnxRuntimeUnavailableReason() {
        try {
            OrtEnvironment.getEnvironment();
            return null;
        } catch (Throwable t) {
            return "ONNX Runtime did not load: " + t;
        }
    }

    @Override
    public void prepare(int heads, int n, int headDim, float[] q, float[] k, float[] v, boolean[] mask, int threads) throws Exception {
        close();
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        options.setIntraOpNumThreads(threads);
        options.setInterOpNumThreads(1);
        options.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
        this.heads = heads;
        this.n = n;
        this.headDim = headDim;
        session = env.createSession(model(heads, n, headDim, (float) (1 / Math.sqrt(headDim)), mask != null), options);
        long[] shape = tensorShape(heads, n, headDim);
        inputs.put("q", tensor(toModelLayout(q, heads, n, headDim), shape));
        inputs.put("k", tensor(toModelLayout(k, heads, n, headDim), shape));
        inputs.put("v", tensor(toModelLayout(v, heads, n, headDim), shape));
        if (mask != null) {
            float[] bias = new float[n * n];
            for (int i = 0; i < bias.length; i++) bias[i] = mask[i] ? 0f : Float.NEGATIVE_INFINITY;
            inputs.put("bias", tensor(bias, biasShape(n)));
        }
        outputBuffer = ByteBuffer.allocateDirect(q.length * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
        output = OnnxTensor.createTensor(env, outputBuffer, shape);
    }

    private OnnxTensor tensor(float[] data, long[] shape) throws Exception {
        FloatBuffer buffer = ByteBuffer.allocateDirect(data.length * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
        buffer.put(data).rewind();
        return OnnxTensor.createTensor(env, buffer, shape);
    }

    @Override
    public void run() throws Exception {
        Map<String, OnnxValue> pinned = Map.of("out", output);
        try (OrtSession.Result ignored = session.run(inputs, pinned)) {
            // The output lands in the pinned buffer.
        }
    }

    @Override
    public float[] output() {
        float[] out = new float[outputBuffer.capacity()];
        outputBuffer.duplicate().rewind().get(out);
        return fromModelLayout(out, heads, n, headDim);
    }

    @Override
    public void close() throws Exception {
        for (OnnxTensor t : inputs.values()) t.close();
        inputs.clear();
        if (output != null) output.close();
        output = null;
        if (session != null) session.close();
        session = null;
    }
}

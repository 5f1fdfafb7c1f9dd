package io.tessera.bench.peers;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.tessera.bench.decode.DecodePeer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * ONNX Runtime's decode step with a past key/value cache: the {@code com.microsoft.GroupQueryAttention}
 * contrib op (its CPU kernel) with q-length 1, grouped-query heads natively (K/V are not repeated per
 * query head). The cache is the op's BNSH {@code [B, Hkv, keys, D]} buffer holding the first
 * {@code keys − 1} tokens; the step passes the last token's key and value as the op's new K/V
 * ({@code seqlens_k = keys − 1}, {@code total_sequence_length = keys}), so the query attends all
 * {@code keys} keys, as every decode peer's does. present_key/present_value are bound to the past's own
 * buffers (ONNX Runtime's shared past/present buffer, what its GenAI library does for decoding): the
 * op appends the token in place instead of copying the cache into a new present tensor each step.
 * Session configured as ORT's docs recommend for CPU inference and as {@link OnnxRuntimePeer} is:
 * all graph optimizations, intra-op threads = the thread count under test, sequential execution;
 * inputs are direct buffers created once and the output is pinned, so a step allocates no tensors.
 */
public final class OnnxRuntimeGqaDecodePeer implements DecodePeer {
    private OrtEnvironment env;
    private OrtSession session;
    private final Map<String, OnnxTensor> inputs = new LinkedHashMap<>();
    private final Map<String, OnnxValue> pinned = new LinkedHashMap<>();
    private FloatBuffer outputBuffer;

    @Override public String name() { return "ONNX Runtime " + OrtEnvironment.getEnvironment().getVersion() + " (GroupQueryAttention op, past KV cache)"; }

    @Override public String id() { return "onnxruntime-gqa"; }

    @Override
    public String unavailableReason() { return OnnxRuntimePeer.onnxRuntimeUnavailableReason(); }

    @Override
    public void prepare(int batch, int heads, int kvHeads, int keys, int headDim, FloatBuffer q, FloatBuffer k, FloatBuffer v, int threads) throws Exception {
        close();
        if (batch < 1 || heads < 1 || kvHeads < 1 || keys < 1 || headDim < 1 || threads < 1) {
            throw new IllegalArgumentException("batch, heads, kvHeads, keys, headDim and threads must be >= 1, got " + batch + ", " + heads + ", " + kvHeads + ", " + keys + ", " + headDim + ", " + threads);
        }
        if (heads % kvHeads != 0) throw new IllegalArgumentException("heads=" + heads + " must be a multiple of kvHeads=" + kvHeads);
        long cacheFloats = (long) batch * kvHeads * keys * headDim, queryFloats = (long) batch * heads * headDim;
        if (q.remaining() != queryFloats) throw new IllegalArgumentException("q has " + q.remaining() + " floats, expected batch·heads·headDim = " + queryFloats);
        if (k.remaining() != cacheFloats) throw new IllegalArgumentException("k has " + k.remaining() + " floats, expected batch·kvHeads·keys·headDim = " + cacheFloats);
        if (v.remaining() != cacheFloats) throw new IllegalArgumentException("v has " + v.remaining() + " floats, expected batch·kvHeads·keys·headDim = " + cacheFloats);
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        options.setIntraOpNumThreads(threads);
        options.setInterOpNumThreads(1);
        options.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
        session = env.createSession(OnnxModel.groupQueryAttention(batch, heads, kvHeads, keys, headDim, (float) (1 / Math.sqrt(headDim))), options);

        // [B, H, 1, D] and [B, 1, H·D] are the same order.
        inputs.put("query", floats(q.duplicate(), new long[] {batch, 1, (long) heads * headDim}));
        inputs.put("key", floats(lastToken(k, batch, kvHeads, keys, headDim), new long[] {batch, 1, (long) kvHeads * headDim}));
        inputs.put("value", floats(lastToken(v, batch, kvHeads, keys, headDim), new long[] {batch, 1, (long) kvHeads * headDim}));
        long[] cacheShape = {batch, kvHeads, keys, headDim};
        OnnxTensor pastKey = floats(k.duplicate(), cacheShape), pastValue = floats(v.duplicate(), cacheShape);
        inputs.put("past_key", pastKey);
        inputs.put("past_value", pastValue);
        IntBuffer seqlens = ByteBuffer.allocateDirect(batch * Integer.BYTES).order(ByteOrder.nativeOrder()).asIntBuffer();
        for (int b = 0; b < batch; b++) seqlens.put(keys - 1);
        inputs.put("seqlens_k", OnnxTensor.createTensor(env, seqlens.rewind(), new long[] {batch}));
        IntBuffer total = ByteBuffer.allocateDirect(Integer.BYTES).order(ByteOrder.nativeOrder()).asIntBuffer().put(0, keys);
        inputs.put("total_sequence_length", OnnxTensor.createTensor(env, total, new long[0]));
        outputBuffer = ByteBuffer.allocateDirect(Math.toIntExact(queryFloats * Float.BYTES)).order(ByteOrder.nativeOrder()).asFloatBuffer();
        pinned.put("out", OnnxTensor.createTensor(env, outputBuffer, new long[] {batch, 1, (long) heads * headDim}));
        pinned.put("present_key", pastKey);   // the shared past/present buffer: the step writes row keys−1 in place
        pinned.put("present_value", pastValue);
    }

    /** The last token's row of every (sequence, KV head) of a [B, Hkv, keys, D] buffer, as [B, 1, Hkv·D]. */
    private static FloatBuffer lastToken(FloatBuffer cache, int batch, int kvHeads, int keys, int headDim) {
        float[] row = new float[batch * kvHeads * headDim];
        int base = cache.position();
        for (int bh = 0; bh < batch * kvHeads; bh++) {
            cache.get(base + Math.toIntExact(((long) bh * keys + keys - 1) * headDim), row, bh * headDim, headDim);
        }
        return FloatBuffer.wrap(row);
    }

    /** A tensor over a new direct buffer holding the remaining floats of {@code data}. */
    private OnnxTensor floats(FloatBuffer data, long[] shape) throws Exception {
        FloatBuffer direct = ByteBuffer.allocateDirect(Math.multiplyExact(data.remaining(), Float.BYTES)).order(ByteOrder.nativeOrder()).asFloatBuffer();
        direct.put(data).rewind();
        return OnnxTensor.createTensor(env, direct, shape);
    }

    @Override
    public void step() throws Exception {
        try (OrtSession.Result ignored = session.run(inputs, pinned)) {
            // The output and the appended cache row land in the pinned buffers.
        }
    }

    @Override
    public float[] output() {
        float[] out = new float[outputBuffer.capacity()];
        outputBuffer.duplicate().rewind().get(out);
        return out;
    }

    @Override
    public void close() throws Exception {
        for (OnnxTensor t : inputs.values()) t.close();   // past_key/past_value are closed here, not again as outputs
        OnnxValue out = pinned.get("out");
        if (out != null) out.close();
        inputs.clear();
        pinned.clear();
        if (session != null) session.close();
        session = null;
        outputBuffer = null;
    }
}

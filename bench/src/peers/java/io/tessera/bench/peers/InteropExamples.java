package io.tessera.bench.peers;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.engine.Engine;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.tessera.attention.Attention;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

/**
 * Tessera tensors and the buffers of DJL and ONNX Runtime, both ways, without copies. Both libraries
 * accept a direct native-order buffer as the storage of a new tensor, and both can hand theirs out:
 * {@link Tensor#wrap} takes such a buffer, and a contiguous Tessera tensor's segment is one
 * ({@link #directBuffer}). Memory stays with its owner: close the DJL/ONNX objects before the arena
 * of a Tessera tensor they view, and keep a DJL/ONNX tensor open while a Tessera tensor wraps it.
 */
public final class InteropExamples {
    private InteropExamples() {}

    /** A contiguous tensor's elements as a direct native-order buffer over the same memory. */
    public static ByteBuffer directBuffer(Tensor t) {
        if (!t.isContiguous()) throw new IllegalArgumentException("directBuffer needs a contiguous tensor, got " + t + "; call contiguous(arena) first");
        return t.segment().asSlice(t.offset() * Float.BYTES, t.elementCount() * Float.BYTES).asByteBuffer().order(ByteOrder.nativeOrder());
    }

    /**
     * ONNX Runtime runs its attention graph on Tessera's q, k, v in place (OnnxTensors over the
     * tensors' memory) and writes its output into a pinned buffer that Tessera then wraps; returns
     * that output as a Tessera tensor, next to which {@code Attention.dense()} can be compared.
     */
    public static Tensor onnxRuntimeAttention(Arena arena, Tensor q, Tensor k, Tensor v) throws Exception {
        long[] shape = q.shape();
        int heads = (int) shape[1], n = (int) shape[2], dim = (int) shape[3];
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        ByteBuffer outBytes = ByteBuffer.allocateDirect((int) q.elementCount() * Float.BYTES).order(ByteOrder.nativeOrder());
        Map<String, OnnxTensor> inputs = new HashMap<>();
        try (OrtSession session = env.createSession(OnnxModel.attention(heads, n, dim, (float) (1 / Math.sqrt(dim)), false), new OrtSession.SessionOptions());
             OnnxTensor out = OnnxTensor.createTensor(env, outBytes.asFloatBuffer(), shape)) {
            inputs.put("q", OnnxTensor.createTensor(env, directBuffer(q).asFloatBuffer(), shape));
            inputs.put("k", OnnxTensor.createTensor(env, directBuffer(k).asFloatBuffer(), shape));
            inputs.put("v", OnnxTensor.createTensor(env, directBuffer(v).asFloatBuffer(), shape));
            Map<String, OnnxValue> pinned = Map.of("out", out);
            try (OrtSession.Result ignored = session.run(inputs, pinned)) {
                // The output is in outBytes.
            }
        } finally {
            for (OnnxTensor t : inputs.values()) t.close();
        }
        return Tensor.wrap(outBytes.asFloatBuffer(), shape);
    }

    /** A DJL NDArray over a contiguous Tessera tensor's memory (PyTorch's from_blob on the direct buffer). */
    public static NDArray toNDArray(NDManager manager, Tensor t) {
        return manager.create(directBuffer(t), new Shape(t.shape()), DataType.FLOAT32);
    }

    /**
     * A Tessera tensor over a float32 NDArray's memory: {@code toByteBuffer(true)} asks for a direct
     * buffer over the array's own data, which the PyTorch engine gives for a contiguous CPU array.
     * The NDArray must stay open while the tensor is used.
     */
    public static Tensor fromNDArray(NDArray array) {
        if (array.getDataType() != DataType.FLOAT32) {
            throw new IllegalArgumentException("fromNDArray needs a float32 NDArray, got " + array.getDataType());
        }
        ByteBuffer bytes = array.toByteBuffer(true);
        if (!bytes.isDirect()) throw new IllegalStateException("the NDArray gave a heap buffer (a copy); wrap needs its direct memory");
        return Tensor.wrap(MemorySegment.ofBuffer(bytes), array.getShape().getShape());
    }

    /** The PyTorch engine through DJL, with natives from the class path only. */
    public static NDManager djlManager() {
        DjlPyTorchPeer.configureOffline(Runtime.getRuntime().availableProcessors());
        return Engine.getEngine("PyTorch").newBaseManager();
    }

    /** Tessera's dense attention on DJL arrays, with the output written into a DJL array in place. */
    public static NDArray attentionOnNDArrays(NDManager manager, NDArray q, NDArray k, NDArray v) {
        NDArray out = manager.zeros(q.getShape(), DataType.FLOAT32);
        Attention.dense().forward(fromNDArray(q), fromNDArray(k), fromNDArray(v), fromNDArray(out));
        return out;
    }
}

package io.tessera.bench.peers;

import com.google.protobuf.CodedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;

/**
 * Writes the ONNX model of softmax attention as protobuf bytes (field numbers from onnx.proto):
 * Transpose(K) → MatMul(Q, Kᵀ) → Mul(scale) → [Add(mask bias)] → Softmax → MatMul(·, V).
 * ONNX ships no Java model builder, so the few messages needed are encoded with protobuf-java.
 */
final class OnnxModel {
    private OnnxModel() {}

    private static final int FLOAT = 1;   // TensorProto.DataType.FLOAT
    private static final int INT32 = 6;   // TensorProto.DataType.INT32

    /** Inputs q, k, v [1, H, n, D] (and bias [n, n] when masked); output "out". */
    static byte[] attention(int heads, int n, int headDim, float scale, boolean masked) throws IOException {
        Message graph = new Message();
        graph.message(1, node("Transpose", new String[] {"k"}, "kt", ints("perm", 0, 1, 3, 2)));
        graph.message(1, node("MatMul", new String[] {"q", "kt"}, "s", null));
        graph.message(1, node("Mul", new String[] {"s", "scale"}, masked ? "s2" : "s3", null));
        if (masked) graph.message(1, node("Add", new String[] {"s2", "bias"}, "s3", null));
        graph.message(1, node("Softmax", new String[] {"s3"}, "p", intAttr("axis", -1)));
        graph.message(1, node("MatMul", new String[] {"p", "v"}, "out", null));
        graph.string(2, "tessera_attention_peer");
        Message scaleTensor = new Message();
        scaleTensor.int32(2, FLOAT);
        scaleTensor.string(8, "scale");
        scaleTensor.bytes(9, floatBytes(scale));
        graph.message(5, scaleTensor);
        long[] qkv = {1, heads, n, headDim};
        graph.message(11, valueInfo("q", qkv));
        graph.message(11, valueInfo("k", qkv));
        graph.message(11, valueInfo("v", qkv));
        if (masked) graph.message(11, valueInfo("bias", new long[] {n, n}));
        graph.message(12, valueInfo("out", qkv));

        return model(graph, false);
    }

    /**
     * ONNX Runtime's fused {@code com.microsoft.MultiHeadAttention} contrib op: q, k, v as
     * [1, n, H·D] (the op's own layout), an additive attention_bias [1, 1, n, n] when masked, output
     * "out" [1, n, H·D].
     */
    static byte[] multiHeadAttention(int heads, int n, int headDim, float scale, boolean masked) throws IOException {
        Message graph = new Message();
        Message node = new Message();
        for (String in : masked ? new String[] {"q", "k", "v", "", "", "bias"} : new String[] {"q", "k", "v"}) node.string(1, in);
        node.string(2, "out");
        node.string(3, "mha");
        node.string(4, "MultiHeadAttention");
        node.message(5, intAttr("num_heads", heads));
        node.message(5, floatAttr("scale", scale));
        node.string(7, "com.microsoft");
        graph.message(1, node);
        graph.string(2, "tessera_mha_peer");
        long[] hidden = {1, n, (long) heads * headDim};
        graph.message(11, valueInfo("q", hidden));
        graph.message(11, valueInfo("k", hidden));
        graph.message(11, valueInfo("v", hidden));
        if (masked) graph.message(11, valueInfo("bias", new long[] {1, 1, n, n}));
        graph.message(12, valueInfo("out", hidden));
        return model(graph, true);
    }

    /**
     * ONNX Runtime's {@code com.microsoft.GroupQueryAttention} contrib op for one decode step of
     * {@code batch} sequences with a past key/value cache: query [B, 1, H·D], the new token's key and
     * value [B, 1, Hkv·D], past_key and past_value [B, Hkv, cache, D] (BNSH, the op's cache layout),
     * seqlens_k [B] (int32: total length − 1) and total_sequence_length (int32 scalar); outputs
     * "out" [B, 1, H·D] and present_key / present_value of the past's shape (the caller may bind them
     * to the past's buffers: the op then appends in place, as ONNX Runtime's GenAI does).
     */
    static byte[] groupQueryAttention(int batch, int heads, int kvHeads, int cache, int headDim, float scale) throws IOException {
        Message graph = new Message();
        Message node = new Message();
        for (String in : new String[] {"query", "key", "value", "past_key", "past_value", "seqlens_k", "total_sequence_length"}) node.string(1, in);
        for (String o : new String[] {"out", "present_key", "present_value"}) node.string(2, o);
        node.string(3, "gqa");
        node.string(4, "GroupQueryAttention");
        node.message(5, intAttr("num_heads", heads));
        node.message(5, intAttr("kv_num_heads", kvHeads));
        node.message(5, floatAttr("scale", scale));
        node.string(7, "com.microsoft");
        graph.message(1, node);
        graph.string(2, "tessera_gqa_decode_peer");
        long[] query = {batch, 1, (long) heads * headDim}, token = {batch, 1, (long) kvHeads * headDim}, past = {batch, kvHeads, cache, headDim};
        graph.message(11, valueInfo("query", query));
        graph.message(11, valueInfo("key", token));
        graph.message(11, valueInfo("value", token));
        graph.message(11, valueInfo("past_key", past));
        graph.message(11, valueInfo("past_value", past));
        graph.message(11, valueInfo("seqlens_k", new long[] {batch}, INT32));
        graph.message(11, valueInfo("total_sequence_length", new long[0], INT32));
        graph.message(12, valueInfo("out", query));
        graph.message(12, valueInfo("present_key", past));
        graph.message(12, valueInfo("present_value", past));
        return model(graph, true);
    }

    /** The ModelProto around a graph: IR version 8 with opset 17 (and the com.microsoft contrib ops). */
    private static byte[] model(Message graph, boolean contribOps) throws IOException {
        Message model = new Message();
        model.int64(1, 8);
        model.string(2, "tessera-bench");
        model.message(7, graph);
        model.message(8, opset("", 17));
        if (contribOps) model.message(8, opset("com.microsoft", 1));
        return model.toBytes();
    }

    private static Message opset(String domain, long version) throws IOException {
        Message m = new Message();
        m.string(1, domain);
        m.int64(2, version);
        return m;
    }

    private static Message floatAttr(String name, float value) throws IOException {
        Message a = new Message();
        a.string(1, name);
        a.float32(2, value);
        a.int32(20, 1);   // AttributeType.FLOAT
        return a;
    }

    private static Message node(String op, String[] inputs, String output, Message attribute) throws IOException {
        Message m = new Message();
        for (String in : inputs) m.string(1, in);
        m.string(2, output);
        m.string(3, op + "_" + output);
        m.string(4, op);
        if (attribute != null) m.message(5, attribute);
        return m;
    }

    private static Message ints(String name, long... values) throws IOException {
        Message a = new Message();
        a.string(1, name);
        for (long v : values) a.int64(8, v);
        a.int32(20, 7);   // AttributeType.INTS
        return a;
    }

    private static Message intAttr(String name, long value) throws IOException {
        Message a = new Message();
        a.string(1, name);
        a.int64(3, value);
        a.int32(20, 2);   // AttributeType.INT
        return a;
    }

    private static Message valueInfo(String name, long[] dims) throws IOException { return valueInfo(name, dims, FLOAT); }

    private static Message valueInfo(String name, long[] dims, int elementType) throws IOException {
        Message shape = new Message();
        for (long d : dims) {
            Message dim = new Message();
            dim.int64(1, d);
            shape.message(1, dim);
        }
        Message tensorType = new Message();
        tensorType.int32(1, elementType);
        tensorType.message(2, shape);
        Message type = new Message();
        type.message(1, tensorType);
        Message info = new Message();
        info.string(1, name);
        info.message(2, type);
        return info;
    }

    private static byte[] floatBytes(float f) {
        int bits = Float.floatToIntBits(f);
        return new byte[] {(byte) bits, (byte) (bits >>> 8), (byte) (bits >>> 16), (byte) (bits >>> 24)};
    }

    /** A protobuf message under construction. */
    private static final class Message {
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        private final CodedOutputStream out = CodedOutputStream.newInstance(bytes);

        void string(int field, String s) throws IOException { out.writeString(field, s); }
        void int64(int field, long v) throws IOException { out.writeInt64(field, v); }
        void int32(int field, int v) throws IOException { out.writeInt32(field, v); }
        void float32(int field, float v) throws IOException { out.writeFloat(field, v); }
        void bytes(int field, byte[] b) throws IOException { out.writeByteArray(field, b); }
        void message(int field, Message m) throws IOException { out.writeByteArray(field, m.toBytes()); }

        byte[] toBytes() throws IOException {
            out.flush();
            return bytes.toByteArray();
        }
    }
}

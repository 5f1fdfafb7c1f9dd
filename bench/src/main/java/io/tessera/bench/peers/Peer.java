package io.tessera.bench.peers;

/**
 * Another attention implementation measured in the same run as Tessera, on the same shapes, with
 * its output checked against the same float64 oracle. Implementations live outside the engine
 * (the {@code peers} Maven profile) and are found with {@link java.util.ServiceLoader}.
 *
 * <p>Lifecycle: {@link #prepare} once per shape (allocate and keep every buffer: page faults are
 * expensive here), {@link #run} many times, {@link #output} to check, {@link #close}.
 */
public interface Peer extends AutoCloseable {

    /** Display name with version, e.g. "ONNX Runtime 1.29 (MatMul/Softmax/MatMul)". */
    String name();

    /** Short stable id for benchmark parameters. */
    String id();

    /**
     * True for a fused attention kernel (one operator from inputs to output, as its library
     * recommends for attention), false for attention spelled out in matrix products and a softmax.
     * The quick main job measures the fused ones, the strongest peers; {@code --full} measures all.
     */
    default boolean fused() { return false; }

    /** Null when the peer can run here, else why not (shown in the report). */
    String unavailableReason();

    /**
     * Prepares attention over one batch of {@code heads} heads: inputs {@code [heads, n, headDim]}
     * row-major, {@code mask} row-major {@code [n, n]} (true = may attend) or null for dense.
     */
    void prepare(int heads, int n, int headDim, float[] q, float[] k, float[] v, boolean[] mask, int threads) throws Exception;

    /** One forward pass on the prepared inputs. */
    void run() throws Exception;

    /** Output {@code [heads, n, headDim]} of the last run. */
    float[] output() throws Exception;

    @Override
    void close() throws Exception;
}

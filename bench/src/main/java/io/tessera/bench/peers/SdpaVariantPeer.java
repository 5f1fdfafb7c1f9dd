package io.tessera.bench.peers;

/**
 * A peer for the comparisons of issues #14 and #16 that {@link Peer} cannot express: attention
 * with a score modifier (ALiBi as an additive float mask, soft-capping) or with half-precision
 * (bf16) inputs. Kept apart from {@link Peer} so the main job's plain matrix does not pick these
 * up. Implementations live in the {@code peers} profile and are found with
 * {@link java.util.ServiceLoader}; same lifecycle as {@link Peer}.
 */
public interface SdpaVariantPeer extends AutoCloseable {

    /** Display name with version and the path it runs (depends on the last {@link #prepare}). */
    String name();

    String id();

    /** Null when the peer can run here, else why not. */
    String unavailableReason();

    /**
     * Prepares attention over one batch of {@code heads} heads at scale 1/√headDim: inputs
     * {@code [heads, n, headDim]} row-major; {@code allowed} row-major {@code [n, n]} (true = may
     * attend) or null for dense; {@code alibiSlopes} one per head (bias slope·(j − i), natural
     * units) or null; {@code softCap} the cap of cap·tanh(s/cap) applied after the bias, or NaN;
     * {@code bf16} runs on the inputs rounded to bfloat16 (the peer rounds them itself).
     */
    void prepare(int heads, int n, int headDim, float[] q, float[] k, float[] v, boolean[] allowed,
                 float[] alibiSlopes, float softCap, boolean bf16, int threads) throws Exception;

    void run() throws Exception;

    /** Output {@code [heads, n, headDim]} of the last run, widened to float32. */
    float[] output() throws Exception;

    @Override
    void close() throws Exception;
}

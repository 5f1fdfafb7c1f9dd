package io.tessera.bench.variants;

/**
 * Another stack's implementation of the linear-time variants (issue #15), found with
 * {@link java.util.ServiceLoader} when the bench is built with {@code -Ppeers}: Linformer, the
 * Performer (FAVOR+, bidirectional), linear attention (elu + 1) and Nyström, each on one batch of
 * {@code heads} heads at scale 1/√headDim, given the same parameters Tessera uses.
 */
public interface LinearVariantPeer extends AutoCloseable {
    /** The variants a peer implements, by {@link VariantsSection} name. */
    java.util.List<String> VARIANTS = java.util.List.of("linformer", "performer", "linear-attention", "nystrom");

    String id();

    /** Display name with versions. */
    String name();

    /** Null when the peer can run here, else why not. */
    String unavailableReason();

    /**
     * Prepares {@code variant} on inputs {@code [heads, n, headDim]} (row-major, Dv = headDim).
     * {@code parameters}: Linformer E then F, each {@code [heads, k, n]}; Performer ω
     * {@code [m, headDim]} (pre-multiplied by headDim^(−1/4), as {@code Performer.projection});
     * Nyström {@code {m}} landmarks (segment means of n/m rows, n divisible by m; 6 pseudo-inverse
     * iterations); linear attention nothing.
     */
    void prepare(String variant, int heads, int n, int headDim, float[] q, float[] k, float[] v, float[][] parameters, int threads) throws Exception;

    void run() throws Exception;

    /** Output {@code [heads, n, headDim]} of the last run. */
    float[] output() throws Exception;

    @Override
    void close() throws Exception;
}

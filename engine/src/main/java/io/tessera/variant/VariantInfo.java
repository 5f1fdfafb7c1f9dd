package io.tessera.variant;

/**
 * One registered attention variant.
 *
 * @param name       unique, stable, lower-case id (used by the bench and the property suite)
 * @param family     e.g. "fused block-sparse", "low-rank", "kernelized"
 * @param paper      where its definition comes from
 * @param complexity time complexity in n (sequence), d (head dim) and the variant's parameters
 * @param contract   what it promises against dense attention
 * @param factory    builds a default-configured operator and the inputs it takes (see {@link #create})
 * @param gradients  whether it has a backward pass, and how (or why not)
 */
public record VariantInfo(String name, String family, String paper, String complexity, AccuracyContract contract, Factory factory,
                          Gradients gradients) {
    public VariantInfo {
        if (name == null || !name.matches("[a-z0-9][a-z0-9-]*")) throw new IllegalArgumentException("name must be a lower-case id, got " + name);
        if (contract == null) throw new NullPointerException("contract");
        if (factory == null) throw new NullPointerException("factory");
        if (gradients == null) throw new NullPointerException("gradients");
    }

    /** A variant without a backward pass yet. */
    public VariantInfo(String name, String family, String paper, String complexity, AccuracyContract contract, Factory factory) {
        this(name, family, paper, complexity, contract, factory, Gradients.forwardOnly("no backward pass implemented yet"));
    }

    /**
     * Whether a variant can be trained through: {@code available} with where the backward pass is
     * (the property suite fails unless a gradient property class covers it), or forward-only with
     * the reason.
     */
    public record Gradients(boolean available, String note) {
        public Gradients {
            if (note == null || note.isBlank()) throw new IllegalArgumentException("note must say where the backward pass is, or why there is none");
        }

        public static Gradients backward(String where) { return new Gradients(true, where); }

        public static Gradients forwardOnly(String reason) { return new Gradients(false, reason); }
    }

    /**
     * Builds an operator of this variant with the default configuration for a workload of
     * {@code batch × heads} sequences of {@code seqLen} positions and head dimension {@code headDim}
     * (parameters such as landmarks, k or features chosen to fit), and the shapes of the inputs it
     * takes — for tests and benchmarks that treat every variant alike, not a tuned configuration.
     */
    @FunctionalInterface
    public interface Factory {
        Configured create(int batch, int heads, int seqLen, int headDim);
    }

    /** A configured operator and the shapes of the q, k and v tensors to give it. */
    public record Configured(AttentionOperator operator, long[] qShape, long[] kShape, long[] vShape) {
        public Configured {
            if (operator == null) throw new NullPointerException("operator");
            qShape = qShape.clone();
            kShape = kShape.clone();
            vShape = vShape.clone();
        }

        @Override public long[] qShape() { return qShape.clone(); }
        @Override public long[] kShape() { return kShape.clone(); }
        @Override public long[] vShape() { return vShape.clone(); }

        /** q, k and v all {@code [batch, heads, seqLen, headDim]}: the attention layout. */
        public static Configured attention(AttentionOperator operator, int batch, int heads, int seqLen, int headDim) {
            long[] shape = {batch, heads, seqLen, headDim};
            return new Configured(operator, shape, shape, shape);
        }
    }

    /** {@link Factory#create} with its arguments checked (each ≥ 1). */
    public Configured create(int batch, int heads, int seqLen, int headDim) {
        if (batch < 1) throw new IllegalArgumentException("batch must be >= 1, got " + batch);
        if (heads < 1) throw new IllegalArgumentException("heads must be >= 1, got " + heads);
        if (seqLen < 1) throw new IllegalArgumentException("seqLen must be >= 1, got " + seqLen);
        if (headDim < 1) throw new IllegalArgumentException("headDim must be >= 1, got " + headDim);
        return factory.create(batch, heads, seqLen, headDim);
    }
}

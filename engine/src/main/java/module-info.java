/**
 * Tessera: tensors over memory segments, a sparse-pattern compiler, block-sparse layouts, attention
 * kernels behind a small backend SPI, and the attention variants built on them.
 *
 * <p>Layers, each depending only on those before it: {@code tensor} → {@code pattern} (a mask as a
 * function) → {@code layout} (the compiled block-sparse map) → {@code backend} (the SPI and what
 * crosses it) → {@code cpu} (the scalar and Vector API kernels, internal) → {@code attention} and
 * {@code variant.*} (the user-facing operators).
 */
module io.tessera.engine {
    // Optional at run time: without it Backend.best() falls back to the scalar backend.
    requires static jdk.incubator.vector;

    exports io.tessera.tensor;
    exports io.tessera.pattern;
    exports io.tessera.layout;
    exports io.tessera.backend;
    exports io.tessera.attention;
    exports io.tessera.cache;
    exports io.tessera.reference;
    exports io.tessera.variant;
    exports io.tessera.variant.kernelized;
    exports io.tessera.variant.lowrank;
    exports io.tessera.variant.factorized;
    exports io.tessera.variant.sparse;
    exports io.tessera.variant.conv;
    exports io.tessera.variant.tensorized;
    exports io.tessera.variant.content;
    exports io.tessera.planner;
    // The CPU kernels are internal; the TornadoVM backend reuses their GEMM call validation.
    exports io.tessera.cpu to io.tessera.tornado;

    uses io.tessera.variant.VariantProvider;
    uses io.tessera.backend.Backend;

    provides io.tessera.variant.VariantProvider with io.tessera.attention.FusedAttentionVariants,
            io.tessera.variant.kernelized.KernelizedVariants, io.tessera.variant.lowrank.LowRankVariants,
            io.tessera.variant.factorized.FactorizedVariants, io.tessera.variant.sparse.SparseVariants,
            io.tessera.variant.conv.ConvolutionVariants, io.tessera.variant.tensorized.TensorizedVariants,
            io.tessera.variant.content.ContentVariants;
    provides io.tessera.backend.Backend with io.tessera.cpu.SimdBackend, io.tessera.cpu.ScalarBackend;
}

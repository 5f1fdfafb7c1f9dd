/**
 * Tessera: tensors over memory segments, a sparse-pattern compiler and attention kernels.
 */
module io.tessera.engine {
    // Optional at run time: without it Backend.best() falls back to the scalar backend.
    requires static jdk.incubator.vector;
    // Layout pictures for reports (javax.imageio).
    requires java.desktop;

    exports io.tessera.tensor;
    exports io.tessera.pattern;
    exports io.tessera.attention;
    exports io.tessera.reference;
    exports io.tessera.variant;
    exports io.tessera.kernel;
    exports io.tessera.kernelized;
    exports io.tessera.lowrank;
    exports io.tessera.factorized;
    exports io.tessera.sparse;
    exports io.tessera.conv;
    exports io.tessera.planner;
    exports io.tessera.tensorized;

    uses io.tessera.variant.VariantProvider;
    uses io.tessera.kernel.Backend;

    provides io.tessera.variant.VariantProvider with io.tessera.attention.FusedAttentionVariants,
            io.tessera.kernelized.KernelizedVariants, io.tessera.lowrank.LowRankVariants,
            io.tessera.factorized.FactorizedVariants, io.tessera.sparse.SparseVariants,
            io.tessera.conv.ConvolutionVariants, io.tessera.tensorized.TensorizedVariants;
    provides io.tessera.kernel.Backend with io.tessera.kernel.SimdBackend, io.tessera.kernel.ScalarBackend;
}

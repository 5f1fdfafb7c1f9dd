package io.tessera.backend;

import io.tessera.layout.HeadLayouts;
import io.tessera.tensor.Tensor;

/**
 * A device that runs Tessera's kernels. Implementations register through
 * {@link java.util.ServiceLoader} ({@code provides io.tessera.backend.Backend}); the engine ships
 * {@code scalar} (the readable reference) and {@code simd} (Vector API, multi-threaded);
 * {@code tornado-kernels} adds {@code tornado}.
 *
 * <p>Every operation writes into caller-supplied tensors: nothing is allocated per call on the
 * hot path beyond per-thread scratch that backends keep and reuse.
 */
public interface Backend {

    /** The backend called {@code name} ("scalar", "simd", "tornado", …); throws naming the known ones. */
    static Backend named(String name) { return BackendRegistry.named(name); }

    /** The highest-priority available backend; logs once which one and why. */
    static Backend best() { return BackendRegistry.best(); }

    /** Every registered backend that can run here, best first. */
    static java.util.List<Backend> available() { return BackendRegistry.available(); }

    /** Stable id: "scalar", "simd", "tornado". */
    String name();

    /** How this backend is configured and why, e.g. "Vector API, 512-bit species, 2 threads". */
    String description();

    /** Whether it can run here (the Vector API module present, a device found, …). */
    boolean isAvailable();

    /** Preference among available backends: {@code best()} picks the highest. */
    int priority();

    /** Query block size this backend's attention kernel is fastest with; layouts are compiled at it. */
    int preferredBlockQ();

    /** Key block size this backend's attention kernel is fastest with. */
    int preferredBlockKV();

    /** A backend of the same kind using {@code threads} worker threads (≥ 1). */
    Backend withThreads(int threads);

    /**
     * Fused block-sparse attention with an online softmax:
     * {@code out[b,h,i,:] = Σ_j softmax_j(scale·q_i·k_j) v_j} over the pairs the layout of head
     * {@code h} allows. q {@code [B,H,Nq,D]}, k {@code [B,Hkv,Nkv,D]}, v {@code [B,Hkv,Nkv,Dv]},
     * out {@code [B,H,Nq,Dv]}, lse {@code [B,H,Nq]} or null. Rows with no allowed key get 0 and
     * lse −∞.
     */
    void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse);

    /**
     * {@code c = alpha·op(a)·op(b) + beta·c} on rank-2 tensors with unit-stride rows, where
     * {@code op(x)} is {@code x} or its transpose. With {@code beta == 0} c's old contents are ignored
     * (NaNs included).
     */
    void gemm(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta);
}

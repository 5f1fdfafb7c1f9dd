package io.tessera.variant;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * What every attention variant is to a caller: a configured, immutable operator from
 * {@code (q, k, v)} to an output, run on a backend.
 *
 * <pre>{@code
 * AttentionOperator op = Performer.withFeatures(256).on(Backend.named("scalar"));
 * Tensor out = op.forward(arena, q, k, v);     // a new tensor of arena
 * op.forward(q, k, v, out);                    // into a caller tensor: no output allocation
 * }</pre>
 *
 * Operators whose function has a softmax scale implement {@link Scaled}; those whose function
 * defines a per-row log-sum-exp implement {@link WithLse}; those with a backward pass implement
 * {@link Differentiable}. {@link VariantRegistry} hands out a
 * default-configured operator of every registered variant ({@link VariantInfo#create}).
 */
public interface AttentionOperator {

    /**
     * Writes the output for {@code q, k, v} into {@code out}, whose shape is {@link #outputShape}.
     * The element types each variant takes are in the README's "Half-precision storage" table: every
     * variant takes BF16 and F16 for any of q, k, v and out (the fused dense and block-sparse ones
     * natively; the others at the cost of a float32 copy of each half-precision tensor per call, the
     * float32 result rounded once to out's type); a log-sum-exp is always F32.
     */
    void forward(Tensor q, Tensor k, Tensor v, Tensor out);

    /** The output for {@code q, k, v} in a new tensor of {@code arena}. */
    default Tensor forward(Arena arena, Tensor q, Tensor k, Tensor v) {
        if (arena == null) throw new NullPointerException("arena");
        Tensor out = Tensor.zeros(arena, outputShape(q, k, v));
        forward(q, k, v, out);
        return out;
    }

    /**
     * The shape {@link #forward} writes for these inputs: {@code [B, H, Nq, Dv]} for attention over
     * q {@code [B, H, Nq, D]} and v {@code [B, Hkv, Nkv, Dv]}; validates the inputs as forward does.
     */
    default long[] outputShape(Tensor q, Tensor k, Tensor v) {
        return AttentionShape.of(q, k, v).outputShape();
    }

    /** The same operator running its products on {@code backend} (default: {@link Backend#best()}). */
    AttentionOperator on(Backend backend);

    /** An operator whose function contains a softmax {@code softmax(scale·q·k)}, scale 1/√D unless set. */
    interface Scaled extends AttentionOperator {
        /** The same operator with softmax scale {@code scale} (finite) instead of 1/√D. */
        Scaled withScale(float scale);
    }

    /** An operator that also gives the log-sum-exp of each output row's softmax. */
    interface WithLse extends AttentionOperator {
        /**
         * The output into {@code out} and each row's log-sum-exp into {@code lse} ({@code [B, H, Nq]};
         * −∞ for a row that attends no key, whose output is 0).
         */
        void forwardWithLse(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse);
    }

    /**
     * An operator that can be trained through: the gradients of a loss {@code L} with respect to
     * q, k and v, given {@code dOut = ∂L/∂out}. What the forward pass computed is recomputed from
     * the inputs (nothing is kept between calls), so the gradients belong to exactly the function
     * {@link #forward} evaluates. Deterministic: bit-identical for any thread count.
     */
    interface Differentiable extends AttentionOperator {
        /**
         * Writes {@code ∂L/∂q}, {@code ∂L/∂k}, {@code ∂L/∂v} into {@code dq}, {@code dk}, {@code dv}
         * (shaped like q, k, v; overwritten, not accumulated into) for {@code dOut} shaped like the
         * output. With grouped-query heads, dk and dv sum over the query heads sharing a key/value
         * head. The gradients must not share memory with each other or with any input; every
         * argument is checked, by name, before any work.
         *
         * <p>Half-precision storage: q, k, v and dOut may each be F32, BF16 or F16, and each gradient
         * F32 or its input's type (dq: F32 or q's type; dk: k's; dv: v's); any other gradient type is
         * rejected by name. Half-precision inputs are widened exactly into float32 copies, the float32
         * backward pass runs on them (float32 accumulation), and each half-precision gradient gets
         * its float32 value rounded once, to nearest with ties to even: the very bits of the call on
         * float32 copies with the gradients rounded afterwards.
         */
        void backward(Tensor q, Tensor k, Tensor v, Tensor dOut, Tensor dq, Tensor dk, Tensor dv);
    }
}

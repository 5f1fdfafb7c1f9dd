package io.tessera.examples;

import io.tessera.attention.Attention;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Tensor;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.util.Locale;

/**
 * Training through sparse attention: q, k and v are parameters, the loss is
 * ½·‖attention(q, k, v) − target‖², and plain gradient descent on the gradients of
 * {@link Attention#backward} drives it down. The target is what another (q, k, v) produces, so the
 * loss can reach 0.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp … io.tessera.examples.TrainingStep [sequenceLength] [steps]
 * </pre>
 */
public final class TrainingStep {
    private TrainingStep() {}

    public static void main(String[] args) {
        run(System.out, args.length > 0 ? Integer.parseInt(args[0]) : 1024, args.length > 1 ? Integer.parseInt(args[1]) : 50);
    }

    /** Runs {@code steps} steps of gradient descent; returns the loss before and after. */
    public static double[] run(PrintStream out, int n, int steps) {
        int heads = 4, kvHeads = 2, headDim = 32;   // grouped-query heads: 2 query heads per key/value head
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.randomNormal(arena, 1, 1f, 1, heads, n, headDim);
            Tensor k = Tensor.randomNormal(arena, 2, 1f, 1, kvHeads, n, headDim);
            Tensor v = Tensor.randomNormal(arena, 3, 1f, 1, kvHeads, n, headDim);
            Attention attention = Attention.sparse(Pattern.causal().and(Pattern.slidingWindow(64, 0)));
            Tensor target = attention.forward(arena, Tensor.randomNormal(arena, 4, 1f, 1, heads, n, headDim),
                    Tensor.randomNormal(arena, 5, 1f, 1, kvHeads, n, headDim), Tensor.randomNormal(arena, 6, 1f, 1, kvHeads, n, headDim));

            // Every buffer made once: a training step allocates nothing.
            Tensor output = Tensor.zeros(arena, 1, heads, n, headDim), lse = Tensor.zeros(arena, 1, heads, n);
            Tensor dOut = Tensor.zeros(arena, 1, heads, n, headDim);
            Tensor dq = Tensor.zeros(arena, q.shape()), dk = Tensor.zeros(arena, k.shape()), dv = Tensor.zeros(arena, v.shape());
            float learningRate = 0.5f * n / 1024f;
            double first = Double.NaN, loss = Double.NaN;
            for (int step = 0; step <= steps; step++) {
                attention.forwardWithLse(q, k, v, output, lse);             // keeps what the backward needs
                loss = lossAndGradient(output, target, dOut);               // ∂loss/∂output
                if (step == 0) first = loss;
                if (step % 10 == 0 || step == steps) out.printf(Locale.ROOT, "step %3d  loss %.6f%n", step, loss);
                if (step == steps) break;
                attention.backward(q, k, v, output, lse, dOut, dq, dk, dv);   // dq, dk, dv, overwritten
                descend(q, dq, learningRate);
                descend(k, dk, learningRate);
                descend(v, dv, learningRate);
            }
            return new double[] {first, loss};
        }
    }

    /** ½·Σ(output − target)², with its gradient (output − target) written into dOut. */
    static double lossAndGradient(Tensor output, Tensor target, Tensor dOut) {
        float[] o = output.toArray(), t = target.toArray(), g = new float[o.length];
        double loss = 0;
        for (int i = 0; i < o.length; i++) {
            g[i] = o[i] - t[i];
            loss += 0.5 * g[i] * g[i];
        }
        try (Arena scratch = Arena.ofConfined()) {
            dOut.copyFrom(Tensor.of(scratch, g, dOut.shape()));
        }
        return loss / o.length;
    }

    static void descend(Tensor parameter, Tensor gradient, float learningRate) {
        float[] p = parameter.toArray(), g = gradient.toArray();
        for (int i = 0; i < p.length; i++) p[i] -= learningRate * g[i];
        try (Arena scratch = Arena.ofConfined()) {
            parameter.copyFrom(Tensor.of(scratch, p, parameter.shape()));
        }
    }
}

package io.tessera.bench.training;

import io.tessera.bench.kernel.AttentionBenchmark;
import io.tessera.bench.peers.PeerBenchmark;
import io.tessera.bench.peers.TrainingPeer;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/** A peer's training step on the same inputs as {@link TrainingBenchmark} (same seeds, B=1, H=8). */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
public class PeerTrainingBenchmark {
    @Param({"djl-sdpa"})
    public String peer;
    @Param({"1024"})
    public int n;
    @Param({"64"})
    public int headDim;
    @Param({"2"})
    public int threads;
    @Param({"dense"})
    public String pattern;

    private TrainingPeer impl;

    @Setup(Level.Trial)
    public void setup() throws Exception {
        impl = TrainingSection.trainingPeer(PeerBenchmark.find(peer));
        int h = AttentionBenchmark.HEADS;
        try (Arena arena = Arena.ofConfined()) {
            impl.prepare(h, n, headDim,
                    Tensor.randomNormal(arena, 1, 1f, 1, h, n, headDim).toArray(),
                    Tensor.randomNormal(arena, 2, 1f, 1, h, n, headDim).toArray(),
                    Tensor.randomNormal(arena, 3, 1f, 1, h, n, headDim).toArray(),
                    PeerBenchmark.mask(pattern, n), threads);
            impl.prepareGradient(Tensor.randomNormal(arena, 4, 1f, 1, h, n, headDim).toArray());
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        impl.close();
    }

    @Benchmark
    public TrainingPeer trainingStep() throws Exception {
        impl.step();
        return impl;
    }
}

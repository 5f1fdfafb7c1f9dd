package io.tessera.bench.pattern;

import io.tessera.layout.BlockLayout;
import io.tessera.pattern.Pattern;
import io.tessera.pattern.PatternCompiler;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Compile time of structured patterns at long lengths, bypassing the layout cache. Targets: sliding
 * window at 1,048,576 with 64-blocks under 50 ms; BigBird at 65,536 under 20 ms.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--sun-misc-unsafe-memory-access=allow"})
public class PatternCompileBenchmark {
    @Param({"window256@1048576", "bigbird@65536", "causal@65536", "longformer@65536"})
    public String patternAtLength;

    private Pattern pattern;
    private int n;

    @Setup
    public void setup() {
        String[] parts = patternAtLength.split("@");
        n = Integer.parseInt(parts[1]);
        pattern = switch (parts[0]) {
            case "window256" -> Pattern.slidingWindow(256);
            case "bigbird" -> Pattern.bigBird(64, 3, 2, 3, 7);
            case "causal" -> Pattern.causal();
            case "longformer" -> Pattern.longformer(512, 1, 0, 1, 2, 3);
            default -> throw new IllegalArgumentException(parts[0]);
        };
        BlockLayout layout = PatternCompiler.compile(pattern, n, n, 64, 64);
        long bytes = 4L * (layout.rowOffsets().length + layout.colIndices().length + layout.colOffsets().length
                + layout.rowIndices().length + layout.transposedTiles().length) + layout.kinds().length;
        System.out.printf("%n[layout] %s: %d tiles (%d partial), CSR + transposed index %.1f KiB%n",
                patternAtLength, layout.tileCount(), layout.partialTiles(), bytes / 1024.0);
    }

    @Benchmark
    public BlockLayout compile() {
        return PatternCompiler.compile(pattern, n, n, 64, 64);
    }
}

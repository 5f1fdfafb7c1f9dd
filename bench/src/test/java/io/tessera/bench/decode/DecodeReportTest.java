package io.tessera.bench.decode;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.bench.report.MachinePeak;
import io.tessera.bench.report.MedianTime;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The decode report's arithmetic: K/V bytes per step, GB/s, share of the triad, speed-up over a peer. */
class DecodeReportTest {

    @Test
    void bytesPerStepCountKeysAndValuesOfTheAttendedTokensOfEverySequence() {
        assertThat(DecodeBenchmark.kvBytes(1, 4096, "dense", "F32")).isEqualTo(2L * 8 * 4096 * 128 * 4);
        assertThat(DecodeBenchmark.kvBytes(4, 65536, "dense", "F32")).isEqualTo(2L * 4 * 8 * 65536 * 128 * 4);
        assertThat(DecodeBenchmark.kvBytes(2, 65536, "window4096", "F32")).isEqualTo(2L * 2 * 8 * 4096 * 128 * 4);
        assertThat(DecodeBenchmark.kvBytes(1, 1000, "window4096", "F32")).isEqualTo(2L * 8 * 1000 * 128 * 4);
        assertThat(DecodeBenchmark.kvBytes(1, 4096, "dense", "BF16")).isEqualTo(2L * 8 * 4096 * 128 * 2);
        assertThat(DecodeBenchmark.kvBytes(8, 131072, "window4096", "F16")).isEqualTo(2L * 8 * 8 * 4096 * 128 * 2);
        assertThatThrownBy(() -> DecodeBenchmark.pattern("causal")).hasMessageContaining("unknown pattern 'causal'");
    }

    @Test
    void theMatchesOfAShapeShareAJvmWhileTheirCachesFit() {
        String[] f32 = {"1", "32768", "dense", "F32", "simd"}, bf16 = {"1", "32768", "dense", "BF16", "simd"}, sdpa = {"1", "32768", "dense", "F32", "djl-sdpa"};
        String[] window = {"1", "32768", "window4096", "F32", "simd"}, other = {"1", "4096", "dense", "F32", "simd"};
        List<List<String[]>> quick = List.of(List.of(f32, bf16, sdpa), List.<String[]>of(window), List.<String[]>of(other));
        assertThat(DecodeSection.jvms(quick)).containsExactly(List.of(quick.get(0), quick.get(1)), List.of(quick.get(2)));
        // 131,072 tokens: 1 GiB a float32 cache, a peer's copy besides (4.5 GiB in all): each match in a JVM of its own.
        String[] big = {"1", "131072", "dense", "F32", "simd"}, bigHalf = {"1", "131072", "dense", "BF16", "simd"}, bigPeer = {"1", "131072", "dense", "F32", "onnxruntime-gqa"}, bigWindow = {"1", "131072", "window4096", "F32", "simd"};
        List<List<String[]>> full = List.of(List.of(big, bigHalf, bigPeer), List.<String[]>of(bigWindow));
        assertThat(DecodeSection.jvms(full)).containsExactly(List.of(full.get(0)), List.of(full.get(1)));
    }

    @Test
    void theTableShowsBandwidthItsShareOfTheTriadAndTheSpeedUpOverPeers() {
        DecodeReport.Row simd = new DecodeReport.Row("simd", 1, 4096, "dense", "F32", 16, 2, 1000, 10, null);
        DecodeReport.Row torch = new DecodeReport.Row("djl-sdpa", 1, 4096, "dense", "F32", 16, 2, 3000, 30, null);
        assertThat(simd.gigabytesPerSecond()).isEqualTo(2.0 * 8 * 4096 * 128 * 4 / 1e6);   // 33.55 GB/s
        String table = DecodeReport.table(List.of(simd, torch), Map.of(2, new MachinePeak(2, 100, 67.108864, 256)));
        assertThat(table).contains("33.55").contains("50%").contains("3.00× vs djl-sdpa");
        assertThat(table.lines().filter(l -> l.startsWith("djl-sdpa")).findFirst().orElseThrow()).doesNotContain("×");
    }

    @Test
    void rowsMeasuredInTurnsShowTheMedianOfTheRoundsRatiosNotTheQuotientOfMedians() {
        DecodeReport.Row simd = new DecodeReport.Row("simd", 1, 4096, "dense", "F32", 16, 2, 1000, 10, null);
        DecodeReport.Row bf16 = new DecodeReport.Row("simd", 1, 4096, "dense", "BF16", 16, 2, 600, 10, new MedianTime(0.5, 0.02, 9));
        DecodeReport.Row torch = new DecodeReport.Row("djl-sdpa", 1, 4096, "dense", "F32", 16, 2, 3000, 30, new MedianTime(2.5, 0.25, 9));
        String table = DecodeReport.table(List.of(simd, bf16, torch), Map.of());
        String simdLine = table.lines().filter(l -> l.startsWith("simd") && l.contains("F32")).findFirst().orElseThrow();
        assertThat(simdLine).contains("2.50× ±0.25 vs djl-sdpa (paired)").doesNotContain("3.00×");
        assertThat(table.lines().filter(l -> l.contains("BF16")).findFirst().orElseThrow()).contains("2.00× vs F32 (paired)");
    }

    @Test
    void aStepIsShownAsAShareOfThePlainReadOfItsOwnBytes() {
        DecodeReport.Row simd = new DecodeReport.Row("simd", 1, 4096, "dense", "F32", 16, 2, 1000, 10, null);
        DecodeReport.Row bf16 = new DecodeReport.Row("simd", 1, 4096, "dense", "BF16", 16, 2, 700, 10, new MedianTime(0.7, 0.02, 9));
        DecodeReport.Row read = new DecodeReport.Row("read", 1, 4096, "dense", "F32", 16, 2, 600, 10, new MedianTime(0.6, 0.01, 9));
        DecodeReport.Row readHalf = new DecodeReport.Row("read", 1, 4096, "dense", "BF16", 16, 2, 300, 10, new MedianTime(0.28, 0.01, 9));
        String table = DecodeReport.table(List.of(simd, bf16, read, readHalf), Map.of());
        assertThat(line(table, "simd", "F32")).contains("at 60% of a plain read of its bytes (paired)").doesNotContain("vs read");
        assertThat(line(table, "simd", "BF16")).contains("at 40% of a plain read of its bytes (paired)");   // 0.28 / 0.7: the BF16 read over the BF16 step
        assertThat(line(table, "read", "F32")).doesNotContain("%  at");
        // Unpaired: the quotient of the two times.
        String alone = DecodeReport.table(List.of(simd, new DecodeReport.Row("read", 1, 4096, "dense", "F32", 16, 2, 500, 10, null)), Map.of());
        assertThat(line(alone, "simd", "F32")).contains("at 50% of a plain read of its bytes").doesNotContain("(paired)");
    }

    private static String line(String table, String backend, String type) {
        return table.lines().filter(l -> l.startsWith(backend + " ") && l.contains(" " + type + " ")).findFirst().orElseThrow();
    }
}

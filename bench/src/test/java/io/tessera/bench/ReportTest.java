package io.tessera.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.tessera.bench.report.Measurement;
import io.tessera.bench.report.OracleCheck;
import io.tessera.bench.report.LayoutImages;
import io.tessera.bench.report.Report;
import io.tessera.pattern.Pattern;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReportTest {

    static List<Measurement> sample() {
        return List.of(
                new Measurement("tessera", "Tessera simd", "dense", 1024, 2, 20, 1, 100, 0),
                new Measurement("tessera", "Tessera simd", "causal", 1024, 2, 11, 1, 95, 128),
                new Measurement("tessera", "Tessera simd", "dense", 2048, 2, 80, 2, 105, 0),
                new Measurement("tessera", "Tessera simd", "causal", 2048, 2, 41, 2, 101, 128),
                new Measurement("onnxruntime", "ONNX Runtime", "dense", 1024, 2, 25, 1, 80, 4 << 20),
                new Measurement("onnxruntime", "ONNX Runtime", "causal", 2048, 2, 82, 3, 50, 16 << 20));
    }

    @Test
    void ratiosPairEachPeerWithTesseraOnTheSameCase() {
        Report report = new Report(sample(), List.of(), List.of(), Map.of(), Map.of());
        List<Report.Ratio> ratios = report.ratios();
        assertThat(ratios).hasSize(2);
        assertThat(ratios.get(0).speedup()).isCloseTo(25.0 / 20, within(1e-12));
        assertThat(ratios.get(1).pattern()).isEqualTo("causal");
        assertThat(ratios.get(1).speedup()).isCloseTo(82.0 / 41, within(1e-12));
        assertThat(report.speedupOverDense()).containsKeys("n= 1024", "n= 2048");
        assertThat(report.speedupOverDense().get("n= 2048").get("causal")).isCloseTo(80.0 / 41, within(1e-12));
    }

    @Test
    void aPairedSpeedUpReplacesTheQuotientOfMediansForItsPeerOnly() {
        List<Measurement> sample = sample();
        Report report = new Report(sample, List.of(), List.of(), Map.of(), Map.of())
                .withPairedSpeedup(sample.get(4), new io.tessera.bench.report.MedianTime(1.1, 0.05, 12));
        List<Report.Ratio> ratios = report.ratios();
        assertThat(ratios.get(0).speedup()).isCloseTo(1.1, within(1e-12));   // not 25 / 20
        assertThat(ratios.get(1).paired()).isNull();
        assertThat(ratios.get(1).speedup()).isCloseTo(82.0 / 41, within(1e-12));
        assertThat(report.ratioTable()).contains("| 1.10× | 0.05 | interleaved, 12 rounds |").contains("| 2.00× | — | separate forks |");
    }

    @Test
    void writesMarkdownHtmlCsvAndChartsThatOpen(@TempDir Path dir) throws Exception {
        Report report = new Report(sample(), List.of(new OracleCheck("Tessera simd", "dense", 384, 4e-7, 1e-5), new OracleCheck("peer", "dense", 384, 1e-3, 1e-5)),
                List.of("a note"), Map.of("date", "today"), Map.of());
        report.withSection("## Decode step\n\n| backend | µs |\n|---|---:|\n| simd decode | 12.5 |\n\n![a chart](charts/time-vs-length.png)\n");
        report.write(dir);
        String md = Files.readString(dir.resolve("report.md"));
        assertThat(md).contains("| Tessera simd | causal | 2048 | 2 | 41.00 |").contains("| causal | 2048 | 2 | ONNX Runtime | 41.00 | 82.00 | 2.00× |")
                .contains("**FAILED**").contains("- a note").contains("**date**: today");
        for (String chart : List.of("time-vs-length", "speedup-over-dense", "speedup-over-peers", "memory-vs-length")) {
            Path png = dir.resolve("charts/" + chart + ".png");
            assertThat(ImageIO.read(png.toFile())).as(chart).isNotNull();
            assertThat(md).contains("charts/" + chart + ".png");
        }
        String html = Files.readString(dir.resolve("index.html"));
        assertThat(html).contains("data:image/png;base64,").contains("<td>ONNX Runtime</td>").doesNotContain("charts/")
                .contains("<h2>Decode step</h2>").contains("<td>simd decode</td>");
        assertThat(md).contains("## Decode step").contains("| simd decode | 12.5 |");
        assertThat(md.indexOf("## Decode step")).isGreaterThan(md.indexOf("## Results")).isLessThan(md.indexOf("## Charts"));
        assertThat(Files.readAllLines(dir.resolve("results.csv"))).hasSize(sample().size() + 1);
    }

    @Test
    void optionsAreParsedAndBadOnesNamed() {
        MainJob.Options o = MainJob.parse(new String[] {"--full", "--out", "x", "--threads", "1", "--no-peers"});
        assertThat(o.full()).isTrue();
        assertThat(o.peers()).isFalse();
        assertThat(o.threads()).isEqualTo(1);
        assertThat(o.out()).isEqualTo(Path.of("x"));
        assertThatThrownBy(() -> MainJob.parse(new String[] {"--threads", "0"})).hasMessage("--threads must be >= 1, got 0");
        assertThatThrownBy(() -> MainJob.parse(new String[] {"--fast"})).hasMessageContaining("unknown option '--fast'");
        assertThatThrownBy(() -> MainJob.parse(new String[] {"--out"})).hasMessageContaining("--out needs a value");
    }

    @Test
    void flopsCountOnlyAllowedPairs() {
        assertThat(MainJob.flops("dense", 1024, 64)).isEqualTo(4.0 * 1024 * 1024 * 64 * 8);
        assertThat(MainJob.flops("causal", 1024, 64)).isEqualTo(4.0 * (1024L * 1025 / 2) * 64 * 8);
    }

    @Test
    void layoutPictureIsAPng(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("layout.png");
        LayoutImages.writePng(Pattern.bigBird(64, 3, 1, 2, 7).compile(4096, 4096, 64, 64), file, 256);
        var image = ImageIO.read(file.toFile());
        assertThat(image.getWidth()).isEqualTo(256);
        assertThat(image.getRGB(0, 0) & 0xffffff).isEqualTo(0x1f3b73);   // global block: FULL
    }
}

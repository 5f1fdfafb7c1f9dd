package io.tessera.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.tessera.bench.report.Compare;
import io.tessera.bench.report.MachinePeak;
import io.tessera.bench.report.Measurement;
import io.tessera.bench.report.Report;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The main job as a tool: options, case selection, progress, quiet forks, peaks, efficiency, --compare. */
class MainJobToolTest {

    @Test
    void onlyAndCompareAreParsedAndBadValuesNamed() {
        MainJob.Options o = MainJob.parse(new String[] {"--only", "simd dense n=1024", "--no-peers"});
        assertThat(o.only().pattern()).isEqualTo("simd dense n=1024");
        assertThat(o.compare()).isNull();
        MainJob.Options c = MainJob.parse(new String[] {"--compare", "a", "b/results.csv"});
        assertThat(c.compare()).containsExactly(Path.of("a"), Path.of("b/results.csv"));
        assertThatThrownBy(() -> MainJob.parse(new String[] {"--only", "dense("})).hasMessageContaining("--only 'dense(' is not a regular expression");
        assertThatThrownBy(() -> MainJob.parse(new String[] {"--compare", "a"})).hasMessageContaining("--compare (second report) needs a value");
    }

    @Test
    void onlySelectsCasesByTheirProgressName() {
        MainJob.Options o = MainJob.parse(new String[] {"--threads", "2", "--only", "^tessera simd dense n=1024 "});
        List<MainJob.Case> all = MainJob.matrix(o, List.of());
        List<MainJob.Case> picked = MainJob.select(all, o.only());
        assertThat(all.size()).isGreaterThan(picked.size());
        assertThat(picked).extracting(MainJob.Case::name).containsExactly("tessera simd dense n=1024 D=64 2T", "tessera simd dense n=1024 D=64 1T");
        assertThat(MainJob.select(all, null)).isEqualTo(all);
    }

    @Test
    void tesseraAndThePeersOfACaseFormOneJobInTurnsTesseraFirst() {
        MainJob.Case dense = new MainJob.Case("tessera", "simd", "dense", 1024, 64, 2), bigbird = new MainJob.Case("tessera", "simd", "bigbird", 4096, 64, 2);
        MainJob.Case ort = new MainJob.Case("onnxruntime-mha", "", "dense", 1024, 64, 2), sdpa = new MainJob.Case("djl-sdpa", "", "dense", 1024, 64, 2);
        MainJob.Case ortOneThread = new MainJob.Case("onnxruntime-mha", "", "dense", 1024, 64, 1), tornado = new MainJob.Case("tessera", "tornado", "dense", 1024, 64, 2);
        List<List<MainJob.Case>> jobs = MainJob.jobs(List.of(ort, dense, bigbird, tornado, sdpa, ortOneThread));
        assertThat(jobs).containsExactly(List.of(dense, ort, sdpa), List.of(bigbird), List.of(tornado), List.of(ortOneThread));
    }

    @Test
    void jobsInTurnsShareOneJvmPerThreadCountWithSimdCasesAloneAndOtherBackendsRunInJmh() {
        MainJob.Case dense = new MainJob.Case("tessera", "simd", "dense", 4096, 64, 2), ort = new MainJob.Case("onnxruntime-mha", "", "dense", 4096, 64, 2);
        MainJob.Case causal = new MainJob.Case("tessera", "simd", "causal", 4096, 64, 2), sdpa = new MainJob.Case("djl-sdpa", "", "causal", 4096, 64, 2);
        MainJob.Case bigbird = new MainJob.Case("tessera", "simd", "bigbird", 4096, 64, 2), bigbirdOneThread = new MainJob.Case("tessera", "simd", "bigbird", 4096, 64, 1);
        MainJob.Case oneThread = new MainJob.Case("tessera", "simd", "dense", 1024, 64, 1), ortOneThread = new MainJob.Case("onnxruntime-mha", "", "dense", 1024, 64, 1);
        MainJob.Case tornado = new MainJob.Case("tessera", "tornado", "dense", 1024, 64, 2), scalar = new MainJob.Case("tessera", "scalar", "dense", 1024, 64, 1);
        List<List<MainJob.Case>> jobs = List.of(List.of(dense, ort), List.of(bigbird), List.of(tornado), List.of(causal, sdpa), List.of(oneThread, ortOneThread),
                List.of(bigbirdOneThread), List.of(scalar));
        assertThat(MainJob.units(jobs, false)).containsExactly(
                List.of(List.of(dense, ort), List.of(bigbird), List.of(causal, sdpa)),
                List.of(List.of(tornado)),
                List.of(List.of(oneThread, ortOneThread), List.of(bigbirdOneThread)),
                List.of(List.of(scalar)));
        // --full: a JVM per job, as every job's states would otherwise be resident at once.
        assertThat(MainJob.units(jobs, true)).containsExactly(jobs.stream().map(List::of).toArray(List[]::new));
    }

    @Test
    void progressEstimatesTheTimeLeftFromFinishedCases() {
        AtomicLong now = new AtomicLong(0);
        Progress p = new Progress(4, 7, now::get);
        assertThat(p.start("tessera simd dense n=1024 D=64 2T")).startsWith("[1/4] tessera simd dense n=1024 D=64 2T ");
        now.set(10_000_000_000L);   // the first case took 10 s: three left at 10 s each
        assertThat(p.done("12.00 ms")).isEqualTo("12.00 ms  ~30s left");
        p.start("b");
        now.set(30_000_000_000L);   // two cases in 30 s: 15 s each, two left
        assertThat(p.done("failed")).isEqualTo("failed  ~30s left");
        p.start("c");
        now.set(300_000_000_000L);
        assertThat(p.done("x")).isEqualTo("x  ~1m40s left");
        p.start("d");
        assertThat(p.done("y")).isEqualTo("y  done in 5m00s");
        assertThat(Progress.duration(3725)).isEqualTo("1h02m");
    }

    @Test
    void forkNoticeIsDroppedButWarningsAndErrorsPass() {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        PrintStream err = new Quiet.LineFilter(sink);
        err.print("WARNING: Using incubator modules: jdk.incubator.vector\n");
        err.print("Exception in thread \"main\" java.lang.IllegalStateException: boom\n");
        err.print("WARNING: Using incubator modules: jdk.incubator.vector");   // split across writes
        err.print("\nSEVERE: peer failed\n");
        err.flush();
        assertThat(sink.toString(StandardCharsets.UTF_8))
                .isEqualTo("Exception in thread \"main\" java.lang.IllegalStateException: boom\nSEVERE: peer failed\n");
        assertThat(Quiet.forkFlags()).contains("--sun-misc-unsafe-memory-access=allow", "--add-modules=jdk.incubator.vector")
                .anySatisfy(f -> assertThat(f).startsWith("-Djava.util.logging.config.file="));
    }

    @Test
    void machinePeakIsMeasured() throws Exception {
        MachinePeak peak = MachinePeak.measure(1, 200_000, 1 << 16, 2);   // small: CI-sized, the numbers only rough
        assertThat(peak.fmaGflops()).isFinite().isPositive();
        assertThat(peak.triadGBytesPerS()).isFinite().isPositive();
        assertThat(peak.toString()).contains("FMA peak").contains("1 thread)").contains("STREAM triad");
        assertThatThrownBy(() -> MachinePeak.measure(0)).hasMessage("threads must be >= 1, got 0");
        assertThatThrownBy(() -> MachinePeak.measure(3, 10, 2, 1)).hasMessage("triadLength must be >= threads (3), got 2");
    }

    @Test
    void efficiencyIsAgainstThePeakAtTheSameThreadCount(@TempDir Path dir) throws Exception {
        List<Measurement> ms = List.of(new Measurement("tessera", "Tessera simd", "dense", 1024, 2, 20, 1, 50, 0),
                new Measurement("tessera", "Tessera simd", "dense", 1024, 1, 30, 1, 30, 0),
                new Measurement("tessera", "Tessera simd", "dense", 1024, 4, 30, 1, 30, 0));
        Report report = new Report(ms, List.of(), List.of(), Map.of("date", "today"), Map.of(),
                Map.of(1, new MachinePeak(1, 60, 10, 256), 2, new MachinePeak(2, 200, 12, 256)));
        assertThat(report.efficiency(ms.get(0))).isCloseTo(0.25, within(1e-12));
        assertThat(report.efficiency(ms.get(1))).isCloseTo(0.5, within(1e-12));
        assertThat(report.efficiency(ms.get(2))).isNaN();
        report.write(dir);
        String md = Files.readString(dir.resolve("report.md"));
        assertThat(md).contains("| Tessera simd | dense | 1024 | 2 | 20.00 | 1.00 | 50.0 | 25.0 % |").contains("| 4 | 30.00 | 1.00 | 30.0 | n/a |")
                .contains("## Machine").contains("**measured peak, 2 threads**: FMA peak 200.0 GFLOP/s").contains("memory 12.0 GB/s");
        assertThat(Files.readAllLines(dir.resolve("results.csv")).get(1)).endsWith(",0.2500");
    }

    @Test
    void compareFlagsOnlyChangesBeyondTheMeasuredError(@TempDir Path dir) throws Exception {
        List<Measurement> a = List.of(new Measurement("tessera", "Tessera simd", "dense", 1024, 2, 20, 0.5, 100, 0),
                new Measurement("tessera", "Tessera simd", "causal", 1024, 2, 11, 0.2, 95, 0),
                new Measurement("onnxruntime", "ONNX Runtime \"1.29\"", "dense", 1024, 2, 25, 1, 80, 0),
                new Measurement("tessera", "Tessera scalar", "dense", 1024, 1, 300, 5, 1, 0));
        List<Measurement> b = List.of(new Measurement("tessera", "Tessera simd", "dense", 1024, 2, 18, 0.5, 110, 0),    // 2 ms > 0.5 + 0.5
                new Measurement("tessera", "Tessera simd", "causal", 1024, 2, 11.3, 0.2, 93, 0),                            // 0.3 ms < 0.4
                new Measurement("onnxruntime", "ONNX Runtime \"1.29\"", "dense", 1024, 2, 28.5, 1, 70, 0),                  // 3.5 ms > 2
                new Measurement("tessera", "Tessera simd", "window256", 1024, 2, 3, 0.1, 90, 0));
        new Report(a, List.of(), List.of(), Map.of(), Map.of()).write(dir.resolve("a"));
        new Report(b, List.of(), List.of(), Map.of(), Map.of()).write(dir.resolve("b"));
        List<Compare.Change> changes = Compare.compare(Compare.read(dir.resolve("a")), Compare.read(dir.resolve("b/results.csv")));
        assertThat(changes).extracting(Compare.Change::verdict).containsExactly(Compare.Verdict.FASTER, Compare.Verdict.WITHIN_NOISE,
                Compare.Verdict.SLOWER, Compare.Verdict.ONLY_IN_A, Compare.Verdict.ONLY_IN_B);
        assertThat(changes.get(2).a().label()).isEqualTo("ONNX Runtime \"1.29\"");
        assertThat(changes.get(0).ratio()).isCloseTo(0.9, within(1e-12));
        String table = Compare.table("a", "b", changes);
        assertThat(table).contains("| Tessera simd · dense · n=1024 · 2T | 20.000 ± 0.500 | 18.000 ± 0.500 | 0.900 | **faster** (-10.0 %) |")
                .contains("**slower** (+14.0 %)").contains("within noise").contains("only in A").contains("only in B")
                .contains("5 cases: 1 faster, 1 within noise, 1 slower, 1 only in a, 1 only in b");
    }

    @Test
    void compareNamesWhatIsWrongWithItsInput(@TempDir Path dir) throws Exception {
        assertThatThrownBy(() -> Compare.read(dir)).hasMessageContaining("no results.csv at " + dir);
        Files.writeString(dir.resolve("results.csv"), "engine,label,pattern,n,threads,ms_per_call\ntessera,x,dense,1,1,2\n");
        assertThatThrownBy(() -> Compare.read(dir)).hasMessageContaining("has no 'ms_error' column");
        Files.writeString(dir.resolve("results.csv"), "engine,label,pattern,n,threads,ms_per_call,ms_error\ntessera,x,dense,1,1,2\n");
        assertThatThrownBy(() -> Compare.read(dir)).hasMessageContaining("line 2 has 6 fields, the header has 7");
        Files.writeString(dir.resolve("results.csv"), "engine,label,pattern,n,threads,ms_per_call,ms_error\ntessera,x,dense,1,1,2,NaN\n");
        assertThat(Compare.compare(Compare.read(dir), Compare.read(dir))).extracting(Compare.Change::verdict)
                .containsExactly(Compare.Verdict.NO_NOISE_ESTIMATE);
    }
}

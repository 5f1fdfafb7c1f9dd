package io.tessera;

import static com.tngtech.archunit.core.domain.JavaClass.Predicates.resideInAnyPackage;
import static com.tngtech.archunit.core.domain.JavaClass.Predicates.resideOutsideOfPackage;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The engine's package graph, read from the compiled classes: no package cycles, and each layer
 * depends only on the layers below it (docs/ARCHITECTURE.md draws the same picture):
 *
 * <pre>
 * tensor → layout → pattern → backend → cpu (internal; reached only through ServiceLoader)
 *                                     → reference (the float64 oracle)
 *                                     → variant (the operator interface and registry)
 *                                     → variant.internal (argument checks shared by the families)
 *                                       → attention → variant.* families → planner
 * </pre>
 */
class ArchitectureTest {
    private static JavaClasses engine;

    @BeforeAll
    static void importEngine() {
        engine = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS).importPackages("io.tessera");
    }

    @Test
    void noPackageCycles() {
        slices().matching("io.tessera.(**)").should().beFreeOfCycles().check(engine);
    }

    @Test
    void tensorIsTheBottomLayer() {
        layer("tensor").check(engine);
    }

    @Test
    void layoutSeesOnlyTensors() {
        layer("layout", "tensor").check(engine);
    }

    @Test
    void patternSeesOnlyTensorsAndLayouts() {
        layer("pattern", "tensor", "layout").check(engine);
    }

    @Test
    void backendSpiSeesOnlyWhatCrossesIt() {
        layer("backend", "tensor", "layout", "pattern").check(engine);
    }

    @Test
    void cpuKernelsImplementTheSpiAndNothingAboveIt() {
        layer("cpu", "tensor", "layout", "pattern", "backend").check(engine);
    }

    @Test
    void theOracleDependsOnNoKernel() {
        layer("reference", "tensor", "layout", "pattern", "backend").check(engine);
    }

    @Test
    void theOperatorInterfaceAndRegistrySitBelowTheOperators() {
        layer("variant", "tensor", "layout", "pattern", "backend").check(engine);
    }

    @Test
    void attentionSeesTheSpiNotTheKernels() {
        layer("attention", "tensor", "layout", "pattern", "backend", "variant").check(engine);
    }

    @Test
    void variantFamiliesAreIndependentOfEachOther() {
        for (String family : List.of("kernelized", "lowrank", "factorized", "sparse", "conv", "tensorized")) {
            layer("variant." + family, "tensor", "layout", "pattern", "backend", "variant", "variant.internal", "attention").check(engine);
        }
    }

    @Test
    void sharedVariantChecksSitBelowTheFamilies() {
        layer("variant.internal", "tensor", "layout", "pattern", "backend").check(engine);
    }

    @Test
    void onlyCpuKnowsCpuClasses() {
        // module-info's "provides … with io.tessera.cpu.SimdBackend" is the one other reference (not a class).
        noClasses().that().resideOutsideOfPackage("io.tessera.cpu..").should().dependOnClassesThat().resideInAPackage("io.tessera.cpu..")
                .because("the CPU kernels are reached through the Backend SPI and ServiceLoader only")
                .check(engine);
    }

    @Test
    void oneFloatVectorShapeChosenInTwoPlaces() {
        // See VariantSpecies: a second float shape in the JVM makes C2 box the kernels' vectors. The
        // short species of the half-precision loads (half the float width, one shape) are the other users.
        noClasses().that().doNotHaveFullyQualifiedName("io.tessera.cpu.VectorConfig")
                .and().doNotHaveFullyQualifiedName("io.tessera.variant.internal.VariantSpecies")
                .should().accessField(jdk.incubator.vector.FloatVector.class, "SPECIES_PREFERRED")
                .orShould().accessField(jdk.incubator.vector.FloatVector.class, "SPECIES_64")
                .orShould().accessField(jdk.incubator.vector.FloatVector.class, "SPECIES_128")
                .orShould().accessField(jdk.incubator.vector.FloatVector.class, "SPECIES_256")
                .orShould().accessField(jdk.incubator.vector.FloatVector.class, "SPECIES_512")
                .orShould().accessField(jdk.incubator.vector.FloatVector.class, "SPECIES_MAX")
                .because("every float vector of the engine has the one shape VectorConfig (or, for the variants, VariantSpecies) chooses")
                .check(engine);
        noClasses().that().doNotHaveFullyQualifiedName("io.tessera.cpu.VectorConfig")
                .and().doNotHaveFullyQualifiedName("io.tessera.variant.internal.VariantSpecies")
                .and().doNotHaveFullyQualifiedName("io.tessera.cpu.HalfRows")
                .and().doNotHaveFullyQualifiedName("io.tessera.cpu.SimdDecodeKernel")
                .should().callMethod(jdk.incubator.vector.VectorShape.class, "forBitSize", int.class)
                .because("a shape of another width is a second float shape unless it is the half-precision loads' short species")
                .check(engine);
    }

    @Test
    void everyExportedPackageIsDocumented() throws Exception {
        List<String> exported = new ArrayList<>();
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("src/main/java/module-info.java"))) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("^\\s*exports\\s+([\\w.]+)\\s*;").matcher(line);
            if (m.find()) exported.add(m.group(1));
        }
        org.assertj.core.api.Assertions.assertThat(exported).contains("io.tessera.tensor", "io.tessera.variant");
        for (String p : exported) {
            org.assertj.core.api.Assertions.assertThat(engine.containPackage(p) && engine.getPackage(p).tryGetPackageInfo().isPresent())
                    .as("package-info.java with a package comment for exported package %s", p).isTrue();
        }
    }

    /** Classes of {@code io.tessera.<name>} (not its sub-packages) depend on no io.tessera package but {@code allowed}. */
    private static ArchRule layer(String name, String... allowed) {
        List<String> packages = new ArrayList<>(List.of("io.tessera." + name));
        for (String a : allowed) packages.add("io.tessera." + a);
        return classes().that().resideInAPackage("io.tessera." + name)
                .should().onlyDependOnClassesThat(resideOutsideOfPackage("io.tessera..").or(resideInAnyPackage(packages.toArray(String[]::new))));
    }
}

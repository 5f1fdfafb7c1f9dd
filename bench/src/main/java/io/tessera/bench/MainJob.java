package io.tessera.bench;

/** The main job: placeholder until the report lands; runs JMH with the given arguments. */
public final class MainJob {
    private MainJob() {}

    public static void main(String[] args) throws Exception {
        org.openjdk.jmh.Main.main(args);
    }
}

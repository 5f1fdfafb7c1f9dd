package io.tessera.backend;

import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.ServiceLoader;

/** Discovers backends once through {@link ServiceLoader} and picks the best. */
final class BackendRegistry {
    private BackendRegistry() {}

    private static final System.Logger LOG = System.getLogger("io.tessera.backend");

    private static final class Holder {
        static final List<Backend> ALL = load();
    }

    /** Separate from {@link Holder}: the pick (and its log line) happens only when a caller asks for it. */
    private static final class BestHolder {
        static final Backend BEST = pickBest();
    }

    private static List<Backend> load() {
        List<Backend> all = new ArrayList<>();
        for (ServiceLoader.Provider<Backend> p : ServiceLoader.load(Backend.class, BackendRegistry.class.getClassLoader()).stream().toList()) {
            try {
                all.add(p.get());
            } catch (Throwable t) {
                LOG.log(Level.WARNING, "backend " + p.type().getName() + " failed to load and is skipped: " + t);
            }
        }
        all.sort(Comparator.comparingInt(Backend::priority).reversed());
        return List.copyOf(all);
    }

    private static Backend pickBest() {
        Backend best = null;
        StringBuilder why = new StringBuilder();
        for (Backend b : Holder.ALL) {
            if (b.isAvailable() && best == null) best = b;
            else if (!b.isAvailable()) why.append("; ").append(b.name()).append(": ").append(b.description());
        }
        if (best == null) throw new IllegalStateException("no attention backend is available" + why);
        // Logged only here, where the backend is picked automatically; Backend.named says nothing.
        LOG.log(Level.INFO, "Tessera backend (picked automatically): " + best.name() + " (" + best.description() + ")" + (why.isEmpty() ? "" : "; not used" + why));
        return best;
    }

    static List<Backend> available() {
        return Holder.ALL.stream().filter(Backend::isAvailable).toList();
    }

    static Backend best() { return BestHolder.BEST; }

    static Backend named(String name) {
        for (Backend b : Holder.ALL) {
            if (b.name().equals(name)) {
                if (!b.isAvailable()) throw new IllegalStateException("backend '" + name + "' is not available here: " + b.description());
                return b;
            }
        }
        throw new IllegalArgumentException("no backend named '" + name + "'; registered: " + Holder.ALL.stream().map(Backend::name).toList());
    }
}

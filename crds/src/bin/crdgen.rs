//! Writes the CRD YAML files into `crds/` and the Helm chart's `crds/`.

use std::{path::Path, process::ExitCode};

fn main() -> ExitCode {
    let files = match apiroutes_crds::crd::files() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRDs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["crds", "charts/apiroutes/crds"] {
        for (name, yaml) in &files {
            let path = root.join(dir).join(name);
            if let Err(e) = std::fs::write(&path, yaml) {
                eprintln!("crdgen: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {dir}/{name}");
        }
    }
    ExitCode::SUCCESS
}

//! Writes the ApiRoute CRD YAML into `crds/` and the Helm chart's `crds/`.

use std::{path::Path, process::ExitCode};

fn main() -> ExitCode {
    let yaml = match apiroutes_crds::crd::yaml() {
        Ok(y) => y,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRD: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["crds", "charts/apiroutes/crds"] {
        let path = root.join(dir).join(apiroutes_crds::crd::FILE_NAME);
        if let Err(e) = std::fs::write(&path, &yaml) {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {dir}/{}", apiroutes_crds::crd::FILE_NAME);
    }
    ExitCode::SUCCESS
}

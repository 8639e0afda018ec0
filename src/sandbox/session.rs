//! `catalog-chatops sandbox`: the simulated world started for a person to try the bot, with the
//! infra steps pointed at the sandbox's stand-in for the infrastructure repo.

use std::path::Path;

use crate::config::Config;

use super::{Ports, SandboxHandle, World, start_on};

/// The stand-in for the infrastructure repo's justfile (Terraform-shaped output, a `yes` prompt).
pub const INFRA_JUSTFILE: &str = include_str!("../../sandbox/infra.justfile");

/// Starts the Openverse world on `ports`, points `config` at it, and writes the infra justfile
/// into every target's workdir (creating it) — or into `infra_dir` when given, which then
/// replaces the workdirs (the interactive sandbox keeps its infra state in a temp dir). Returns
/// the running world.
pub async fn start(
    config: &mut Config,
    ports: Ports,
    infra_dir: Option<&Path>,
) -> std::io::Result<SandboxHandle> {
    let world = World::openverse();
    // A person trying the bot should not need a secret: this Airflow accepts any password.
    world.lock().airflow.password.clear();
    let handle = start_on(world, ports).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot start the sandbox on 127.0.0.1 ports {}, {}, {}: {e} (is another sandbox running?)",
                ports.github, ports.registry, ports.airflow
            ),
        )
    })?;
    handle.configure(config);
    for target in config.targets.values_mut() {
        if let Some(dir) = infra_dir {
            target.workdir = dir.display().to_string();
        }
        write_infra(Path::new(&target.workdir))?;
    }
    Ok(handle)
}

/// Writes `infra.justfile` into `workdir` unless an identical one is there.
pub fn write_infra(workdir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(workdir)?;
    let path = workdir.join("infra.justfile");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(INFRA_JUSTFILE) {
        std::fs::write(&path, INFRA_JUSTFILE)?;
    }
    Ok(())
}

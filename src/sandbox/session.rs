//! `catalog-chatops sandbox`: the simulated world started for a person to try the bot, with the
//! infra steps pointed at the sandbox's stand-in for the infrastructure repo.

use std::path::Path;

use crate::config::{AirflowApi, Config, Flow};

use super::{Ports, SandboxHandle, World, start_on};

/// The stand-in for the infrastructure repo's justfile (Terraform-shaped output, a `yes` prompt).
pub const INFRA_JUSTFILE: &str = include_str!("../../sandbox/infra.justfile");

/// The rest of the stand-in (`sandbox/ansible-infra/`): the runbooks' recipes (`just bump
/// production airflow`, `just ansible/playbook …`, `just plan prod catalog-airflow`) and a real
/// playbook run against localhost. Written over on every start.
const STAND_IN: [(&str, &str); 5] = [
    (
        "justfile",
        include_str!("../../sandbox/ansible-infra/justfile"),
    ),
    (
        "ansible/justfile",
        include_str!("../../sandbox/ansible-infra/ansible/justfile"),
    ),
    (
        "ansible/ansible.cfg",
        include_str!("../../sandbox/ansible-infra/ansible/ansible.cfg"),
    ),
    (
        "ansible/airflow.yml",
        include_str!("../../sandbox/ansible-infra/ansible/airflow.yml"),
    ),
    (
        "ansible/inventory/production/hosts.yml",
        include_str!("../../sandbox/ansible-infra/ansible/inventory/production/hosts.yml"),
    ),
];

/// The stand-in's state: what the bump changes and what the "Airflow host" holds. Written only
/// where missing, so a deploy's effect survives a restart of the sandbox.
const STAND_IN_STATE: [(&str, &str); 2] = [
    (
        "ansible/inventory/production/group_vars/airflow.yml",
        include_str!(
            "../../sandbox/ansible-infra/ansible/inventory/production/group_vars/airflow.yml"
        ),
    ),
    (
        "state/host/airflow.env",
        include_str!("../../sandbox/ansible-infra/state/host/airflow.env"),
    ),
];

/// Where the Ansible flow's steps find `ansible-playbook`: `ANSIBLE_PLAYBOOK`, then `PATH`, then
/// the venv `scripts/ansible-venv.sh` makes. The error says how to get one.
pub fn find_ansible_playbook() -> Result<std::path::PathBuf, String> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(given) = std::env::var_os("ANSIBLE_PLAYBOOK").filter(|v| !v.is_empty()) {
        let given = std::path::PathBuf::from(given);
        return if executable(&given) {
            Ok(given)
        } else {
            Err(format!(
                "ANSIBLE_PLAYBOOK is {}, which is not an executable file. {ANSIBLE_HINT}",
                given.display()
            ))
        };
    }
    let on_path: Vec<std::path::PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("ansible-playbook"))
                .collect()
        })
        .unwrap_or_default();
    let venv = std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".cache/catalog-chatops-ansible-venv/bin/ansible-playbook"));
    on_path
        .into_iter()
        .chain(venv)
        .find(|p| executable(p))
        .ok_or_else(|| {
            format!(
                "The Ansible flow runs a real ansible-playbook, and none was found (ANSIBLE_PLAYBOOK \
                 is unset, none on PATH, no ~/.cache/catalog-chatops-ansible-venv). {ANSIBLE_HINT}"
            )
        })
}

const ANSIBLE_HINT: &str = "Install ansible-core with `bash scripts/ansible-venv.sh` (a venv in \
    ~/.cache/catalog-chatops-ansible-venv, found by itself) or `pipx install ansible-core`, or set \
    ANSIBLE_PLAYBOOK to one; `sandbox` without `--flow ansible` needs none.";

/// Starts the Openverse world on `ports`, points `config` at it, and writes the infra justfile
/// into every target's workdir (creating it) — or into `infra_dir` when given, which then
/// replaces the workdirs (the interactive sandbox keeps its infra state in a temp dir). Returns
/// the running world.
pub async fn start(
    config: &mut Config,
    ports: Ports,
    infra_dir: Option<&Path>,
) -> std::io::Result<SandboxHandle> {
    if config.targets.values().any(|t| t.flow == Flow::Ansible) {
        // Before anything starts: the one thing this sandbox needs beyond the README's two.
        find_ansible_playbook().map_err(std::io::Error::other)?;
    }
    let world = World::openverse();
    // A person trying the bot should not need a secret: this Airflow accepts any password.
    world.lock().airflow.password.clear();
    if config.airflow.api == AirflowApi::V1 {
        // Production's Airflow 2.9: /api/v1 with basic auth.
        world.lock().airflow.as_airflow2();
    }
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
        if target.flow == Flow::Ansible {
            // Found once here and handed to the steps, whatever their env_passthrough.
            let program = find_ansible_playbook().map_err(std::io::Error::other)?;
            target
                .env
                .insert("ANSIBLE_PLAYBOOK".into(), program.display().to_string());
        }
    }
    Ok(handle)
}

/// Writes the infra stand-in into `workdir`: `infra.justfile` and the runbooks' recipes and
/// playbook (each unless an identical one is there), and their initial state where missing.
pub fn write_infra(workdir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(workdir)?;
    let files = std::iter::once(("infra.justfile", INFRA_JUSTFILE)).chain(STAND_IN);
    for (name, text) in files {
        let path = workdir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, text)?;
        }
    }
    for (name, text) in STAND_IN_STATE {
        let path = workdir.join(name);
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, text)?;
        }
    }
    Ok(())
}

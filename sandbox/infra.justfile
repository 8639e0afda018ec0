# The sandbox's stand-in for the Openverse infrastructure repo. `bump` records the wanted image
# tag, `plan` prints a Terraform-shaped plan of the change, and `apply` prints it again and waits
# for `yes` like `terraform apply` does. State lives in ./state beside this file's copy.
#
# Knobs for trying failure paths (set in the step environment, or as files in ./state):
#   SANDBOX_BUMP_SECONDS=N   bump sleeps N seconds before it changes anything (a slow bump)
#   SANDBOX_PLAN_SECONDS=N   plan sleeps N seconds first (a slow plan: kill the bot meanwhile)
#   SANDBOX_APPLY_SECONDS=N  apply sleeps N seconds after the `yes`, while it "changes" resources
#   state/drift              apply shows one more change than plan did (the plan changed)
#   state/hold-<point>       the recipe waits at <point> while this file exists: `bump` and `plan`
#                            after their start line, `apply-prompt` before apply asks for `yes`,
#                            `apply` after the answer (tests kill the bot there, then remove it)
#   state/fail-bump          bump exits 1
#   SANDBOX_ECHO=text        bump prints text (tests check that secrets in step output are redacted)
#   SANDBOX_ENV_DUMP=path    bump writes its environment there (tests check it is scrubbed)
#
# Every recipe appends to state/steps.log (`<recipe> start pid=N`, `apply answered <answer>`,
# `apply applied <version>`, `<recipe> end`): the step-side record that fault tests compare with
# the bot's approvals. It never goes to stdout, so plan fingerprints do not change.

set shell := ["bash", "-eu", "-o", "pipefail", "-c"]

bump version:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p state
    echo "bump start pid=$$" >> state/steps.log
    while [ -e state/hold-bump ]; do sleep 0.05; done
    sleep "${SANDBOX_BUMP_SECONDS:-0}"
    if [ -e state/fail-bump ]; then echo "error: cannot update prod.tfvars (state/fail-bump)" >&2; exit 1; fi
    echo "{{version}}" > state/wanted
    if [ -n "${SANDBOX_ECHO:-}" ]; then echo "$SANDBOX_ECHO"; fi
    if [ -n "${SANDBOX_ENV_DUMP:-}" ]; then env > "$SANDBOX_ENV_DUMP"; fi
    echo "Updated catalog_airflow_image_tag to \"{{version}}\" in environments/prod/catalog-airflow.tfvars"
    echo "bump end" >> state/steps.log

plan:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p state
    echo "plan start pid=$$" >> state/steps.log
    while [ -e state/hold-plan ]; do sleep 0.05; done
    sleep "${SANDBOX_PLAN_SECONDS:-0}"
    just --justfile "{{justfile()}}" --working-directory . _show-plan
    echo "plan end" >> state/steps.log

apply:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p state
    echo "apply start pid=$$" >> state/steps.log
    just --justfile "{{justfile()}}" --working-directory . _show-plan
    if [ -e state/drift ]; then
        echo
        echo "  # module.catalog_airflow.aws_security_group.airflow will be updated in-place"
        echo "  ~ resource \"aws_security_group\" \"airflow\" {"
        echo "      ~ ingress = [ ... ]"
        echo "    }"
        echo
        echo "Plan: 1 to add, 2 to change, 1 to destroy."
    fi
    if [ -e state/hold-apply-prompt ]; then
        echo "apply holding before the prompt" >> state/steps.log
        while [ -e state/hold-apply-prompt ]; do sleep 0.05; done
    fi
    echo
    echo "Do you want to perform these actions?"
    echo "  Terraform will perform the actions described above."
    echo "  Only 'yes' will be accepted to approve."
    echo
    printf "  Enter a value: "
    read -r answer || answer=""
    echo "apply answered ${answer:-<nothing>}" >> state/steps.log
    echo
    if [ "$answer" != "yes" ]; then
        echo "Apply cancelled."
        echo "apply end" >> state/steps.log
        exit 1
    fi
    while [ -e state/hold-apply ]; do sleep 0.05; done
    sleep "${SANDBOX_APPLY_SECONDS:-0}"
    echo "module.catalog_airflow.aws_instance.airflow: Destroying... [id=i-0fedcba9876543210]"
    echo "module.catalog_airflow.aws_instance.airflow: Creation complete after 42s [id=i-0123456789abcdef0]"
    cp state/wanted state/deployed
    echo "apply applied $(cat state/wanted)" >> state/steps.log
    echo
    echo "Apply complete! Resources: 1 added, 1 changed, 1 destroyed."
    echo "apply end" >> state/steps.log

_show-plan:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p state
    wanted=$(cat state/wanted 2>/dev/null || echo none)
    deployed=$(cat state/deployed 2>/dev/null || echo v1.5.2)
    echo "module.catalog_airflow.data.aws_ami.ubuntu: Reading..."
    echo "module.catalog_airflow.aws_instance.airflow: Refreshing state... [id=i-0fedcba9876543210]"
    echo
    if [ "$wanted" = "$deployed" ] || [ "$wanted" = none ]; then
        echo "No changes. Your infrastructure matches the configuration."
        exit 0
    fi
    old=$(printf '%s' "$deployed" | sha1sum | cut -c1-40)
    new=$(printf '%s' "$wanted" | sha1sum | cut -c1-40)
    echo "Terraform will perform the following actions:"
    echo
    echo "  # module.catalog_airflow.aws_instance.airflow must be replaced"
    echo "-/+ resource \"aws_instance\" \"airflow\" {"
    echo "      ~ id        = \"i-0fedcba9876543210\" -> (known after apply)"
    echo "      ~ user_data = \"$old\" -> \"$new\" # forces replacement"
    echo "        # (29 unchanged attributes hidden)"
    echo "    }"
    echo
    echo "  # module.catalog_airflow.aws_route53_record.airflow will be updated in-place"
    echo "  ~ resource \"aws_route53_record\" \"airflow\" {"
    echo "      ~ records = [ \"10.0.1.23\" ] -> (known after apply)"
    echo "    }"
    echo
    if [ ! -e state/drift ] || [ "${0##*/}" = plan ]; then
        echo "Plan: 1 to add, 1 to change, 1 to destroy."
    fi

"""The configuration schema: every variable once, with its type, default, secrecy and meaning.

`settings.Settings` reads values through this schema (typed, validated, exit 78 naming the
variable); `env/defaults.env` and README's configuration table are generated from it
(`invoke config-docs`), and tests/test_config.py fails when either drifts. A new variable is
one entry in VARIABLES: nothing else writes its default.

Types: text, flag (1/true/yes/on or 0/false/no/off/empty), seconds (0 < s <= 86400),
count (a whole number, 0 to 1000), words (whitespace-separated), choice (one of a few words, aliases allowed), template
(`{name}` `{namespace}` `{project_name}` `{base_domain}` `{tag}`). A variable whose
`blank` is "default" takes its default when set empty (a tool path, a timeout); for the
others empty is a value (no prefix, no list, off).

Cheap to import (check's start-up budget): plain classes with __slots__, no dataclasses.
"""
from __future__ import annotations

from typing import Iterator

TEXT, FLAG, SECONDS, WORDS, CHOICE, TEMPLATE = "text", "flag", "seconds", "words", "choice", "template"
COUNT = "count"


class Var:
    """One configuration variable, as declared once."""

    __slots__ = ("name", "type", "default", "doc", "example", "secret", "withheld", "blank",
                 "empty", "choices", "section", "environment_only")

    def __init__(self, name: str, type: str, default: str, doc: str, example: str = "", *,
                 secret: bool = False, withheld: bool = False, blank: str = "keep", empty: str = "",
                 choices: dict[str, str] | None = None, section: str = "",
                 environment_only: bool = False) -> None:
        self.name, self.type, self.default, self.doc, self.example = name, type, default, doc, example
        self.secret = secret or withheld
        self.withheld = withheld  # only this tool reads it: kept out of every child's environment
        self.blank = blank  # "default": set empty means the default; "keep": empty is a value
        self.empty = empty  # what an empty value means, for the docs
        self.choices = choices or {}  # accepted word -> the value it stands for
        self.section = section
        self.environment_only = environment_only  # read from the process environment, not env files


def _section(title: str, *variables: Var) -> list[Var]:
    for var in variables:
        var.section = title
    return list(variables)


VARIABLES: list[Var] = [
    *_section(
        "Octopod's own variables (fallbacks for the flags)",
        Var("OCTOPOD_ENV", TEXT, "", "profile: also read `env/<profile>.env`", "staging",
            empty="none", environment_only=True),
        Var("PROJECT_NAME", TEXT, "", "fallback for `--project-name`", "shop"),
        Var("BASE_DOMAIN", TEXT, "", "fallback for `--base-domain`", "stage.example.com"),
        Var("NAMESPACE", TEXT, "", "fallback for `--namespace`", "stagings"),
    ),
    *_section(
        "Tools and cluster access",
        Var("HELM_BIN", TEXT, "helm", "helm 3.x or 4.x, on PATH unless a path is given", "/utils/helm",
            blank="default"),
        Var("KUBECTL_BIN", TEXT, "kubectl", "kubectl, on PATH unless a path is given", "/utils/kubectl",
            blank="default"),
        Var("KUBECONFIG", TEXT, "", "cluster access: standard kubeconfig path(s)",
            "/home/octopod/.kube/config",
            empty="`~/.kube/config` if present, else the in-cluster service account"),
        Var("KUBE_SERVICE_ACCOUNT_DIR", TEXT, "/var/run/secrets/kubernetes.io/serviceaccount",
            "in-cluster (no kubeconfig): the service account's `token`, `ca.crt`, `namespace`; helm "
            "and kubectl get a kubeconfig naming these files, kept in `octopod-control-<uid>/` under "
            "`XDG_RUNTIME_DIR` or the temp dir (kubectl ignores in-cluster configuration once given "
            "`--request-timeout`)", "/run/secrets/sa", blank="default"),
        Var("KUBE_TIMEOUT", SECONDS, "10", "seconds for one Kubernetes API request", "5", blank="default"),
        Var("HELM_DRIVER", CHOICE, "secret", "where helm keeps release records", "configmap",
            blank="default", choices={"secret": "secret", "secrets": "secret",
                                      "configmap": "configmap", "configmaps": "configmap"}),
    ),
    *_section(
        "What gets deployed",
        Var("CHART", TEXT, "charts/example",
            "local path (absolute, or relative to the current directory, else to the project root), "
            "`repo/chart`, or `oci://`", "oci://ghcr.io/acme/charts/app"),
        Var("CHART_VERSION", TEXT, "", "`--version`", "1.4.2", empty="latest"),
        Var("CHART_REPO_URL", TEXT, "", "repository `init` adds for `repo/chart` (an `oci://` one: the "
            "registry `init` logs in to); no `?query` or `#fragment` (exit 78)", "https://charts.acme.io"),
        Var("RELEASE_NAME", TEMPLATE, "{name}", "helm release name template", "{project_name}-{name}",
            blank="default"),
        Var("DEPLOY_NAMESPACE", TEMPLATE, "{namespace}",
            "namespace template (`{name}`: one namespace per staging, created and marked by the tool; "
            "an existing one without its mark is refused)", "stg-{name}", blank="default"),
        Var("HELM_TIMEOUT", SECONDS, "300", "seconds helm may take, waiting included", "600",
            blank="default"),
        Var("HELM_WAIT", FLAG, "true", "wait for readiness in create/update", "false"),
        Var("CREATE_NAMESPACE", FLAG, "false", "create a shared `DEPLOY_NAMESPACE` when absent "
            "(marked, never deleted); a per-staging one is always created", "true"),
        Var("VALUES_FILES", WORDS, "", "extra values files, before `VALUES_TEMPLATES` and the overrides",
            "/etc/octopod/common.yaml"),
    ),
    *_section(
        "create and update: following the rollout while helm waits",
        Var("PROGRESS_INTERVAL", SECONDS, "10", "with `HELM_WAIT=true`: a stderr line whenever a "
            "workload's state changes, and one naming what is still not ready at least this often "
            "([docs/rollout.md](docs/rollout.md))", "30", blank="default"),
        Var("FAIL_FAST", FLAG, "true", "stop waiting, well before `HELM_TIMEOUT`, once the rollout fails "
            "in a way that will not fix itself (the rules: [docs/rollout.md](docs/rollout.md)); helm is "
            "stopped, the release left failed, the failure diagnosed; `false`: only `HELM_TIMEOUT` ends "
            "the wait", "false"),
        Var("FAIL_FAST_GRACE", SECONDS, "30", "seconds a container may stay waiting in `ErrImagePull`/"
            "`ImagePullBackOff`, `InvalidImageName`, `CreateContainerConfigError` or "
            "`CreateContainerError` before that fails the rollout", "60", blank="default"),
        Var("FAIL_FAST_RESTARTS", COUNT, "3", "restarts at which a container in `CrashLoopBackOff` fails "
            "the rollout", "5", blank="default"),
        Var("LOG_TAIL_LINES", COUNT, "20", "lines of each failing container's log in a failed rollout's "
            "diagnosis (the previous container's for a crash loop; 0: no log)", "50", blank="default"),
    ),
    *_section(
        "Where Octopod's arguments land in the chart's values",
        Var("TAG_KEY", TEXT, "app.tag", "where `--tag` lands (and where `check` reads the running tag)",
            "image.tag"),
        Var("PROJECT_NAME_KEY", TEXT, "global.project-name", "where `--project-name` lands; set empty, "
            "it is not set at all (a chart whose `values.schema.json` refuses unknown keys)", "projectName"),
        Var("BASE_DOMAIN_KEY", TEXT, "global.base-domain", "where `--base-domain` lands; set empty, it is "
            "not set at all", "ingress.domain"),
        Var("APP_ENV_PREFIX", TEXT, "app.env", "where app-env overrides land; set empty, app-env overrides "
            "are switched off (one given is exit 64)", "env"),
        Var("DEPLOYMENT_OVERRIDE_PREFIX", TEXT, "", "where deployment overrides land", "app",
            empty="the root"),
        Var("PROTECTED_VALUES", WORDS, "", "values paths (from the root, whitespace-separated, map keys "
            "only) no deployment override may set, lie under or replace (an override by list index "
            "replaces the whole list)", "serviceAccount.name image.repository",
            empty="only the four paths above"),
        Var("ALLOW_TEMPLATE_VALUES", FLAG, "false", "accept override values holding `{{` (refused by "
            "default: charts using `tpl` would run them)", "true"),
    ),
    *_section(
        "Per-staging values",
        Var("VALUES_TEMPLATES", WORDS, "", "values files (whitespace-separated; absolute, or relative to "
            "the current directory, else to the project root) whose string values may hold `{name}`, "
            "`{namespace}`, `{project_name}`, `{base_domain}`, `{tag}`, rendered per deployment and applied "
            "after `VALUES_FILES`, before the overrides; only string values are rendered, and stay "
            "strings; an unknown placeholder or an unreadable file is exit 78 "
            "([docs/charts.md](docs/charts.md))", "/etc/octopod/staging.yaml"),
    ),
    *_section(
        "info",
        Var("INFO_URLS", WORDS, "app=https://{name}.{base_domain}", "`key=template` pairs, whitespace-separated",
            "app=https://{name}.{base_domain} admin=https://admin-{name}.{base_domain}"),
        Var("INFO_INGRESS", FLAG, "true", "also print the release's Ingress hosts", "false"),
    ),
    *_section(
        "tag_check",
        Var("REGISTRY_IMAGES", TEXT, "", "images (comma-separated) whose `--tag` must exist; Docker Hub "
            "short names as docker reads them", "registry.example.com/team/app,ghcr.io/org/worker,nginx",
            empty="check nothing"),
        Var("REGISTRY_USERNAME", TEXT, "", "user for `REGISTRY_AUTH_HOST` (with `REGISTRY_PASSWORD`, "
            "both or neither)", "ci-bot", empty="docker config"),
        Var("REGISTRY_PASSWORD", TEXT, "", "password or token for `REGISTRY_AUTH_HOST`", "a token",
            withheld=True, empty="docker config"),
        Var("REGISTRY_AUTH_HOST", TEXT, "", "the one registry the pair above is sent to; others use "
            "docker config or go anonymous", "registry.example.com", empty="the first image's registry"),
        Var("REGISTRY_INSECURE", TEXT, "false", "plain http for every registry (`true`) or the listed "
            "hosts (comma-separated): tag checks, and helm's `--plain-http` for an `oci://` chart's "
            "registry (login, install, upgrade)", "registry.local:5000"),
        Var("REGISTRY_TOKEN_REALMS", TEXT, "", "token services on another host that may receive a "
            "registry's credentials, as comma-separated `registry=realm-host` pairs (Docker Hub's and "
            "gitlab.com's are built in; any other realm gets an anonymous token request)",
            "registry.example.com=gitlab.example.com"),
        Var("REGISTRY_TIMEOUT", SECONDS, "10", "seconds for the whole tag check", "5", blank="default"),
    ),
    *_section(
        "archive and cleanup",
        Var("ARCHIVE_STRATEGY", CHOICE, "scale", "how archive frees the compute: `scale` (to 0, "
            "recorded) or `uninstall` (`helm uninstall --keep-history`)", "uninstall", blank="default",
            choices={"scale": "scale", "uninstall": "uninstall"}),
        Var("CLEANUP_SELECTORS", TEXT, "", "more PVC label selectors (`;`-separated templates), honoured "
            "only in a namespace the tool created for the staging",
            "team.example.com/staging={name};tier=db,app={name}"),
        Var("CLEANUP_NAMESPACE", FLAG, "false", "also delete the namespace, only one the tool created "
            "for this staging", "true"),
        Var("CLEANUP_TIMEOUT", SECONDS, "300", "seconds for the Kubernetes part of cleanup", "120",
            blank="default"),
    ),
    *_section(
        "init and remote cleanup",
        Var("SSH_PRIVATE_KEY", TEXT, "", "`init` writes it 0600 (to `SSH_KEY_FILE` or `~/.ssh/id_<type>`)",
            "an OpenSSH private key", withheld=True),
        Var("SSH_KEY_FILE", TEXT, "", "where the key goes and where remote cleanup reads it",
            "/home/octopod/.ssh/deploy_key"),
        Var("SSH_KNOWN_HOSTS", TEXT, "", "`init` writes `~/.ssh/known_hosts`",
            "output of `ssh-keyscan db.example.com`"),
        Var("SSH_CONFIG", TEXT, "", "`init` keeps it in one marked block of `~/.ssh/config`",
            "`Host db\\n  User cleanup`"),
        Var("KUBECONFIG_CONTENT", TEXT, "", "`init` writes it 0600 to `KUBECONFIG` or `~/.kube/config`",
            "a kubeconfig", withheld=True),
        Var("DOCKER_CONFIG_JSON", TEXT, "", "`init` writes `~/.docker/config.json` 0600 (for `tag_check`)",
            '`{"auths": {...}}`', withheld=True),
        Var("HELM_REPO_NAME", TEXT, "", "name `init` adds `CHART_REPO_URL` under", "acme",
            empty="`repo` of `CHART=repo/chart`, else `octopod`"),
        Var("HELM_REPO_USERNAME", TEXT, "", "repository user (for an `oci://` chart: `init` runs `helm "
            "registry login`)", "bot"),
        Var("HELM_REPO_PASSWORD", TEXT, "", "repository password; it reaches helm on stdin", "a token",
            withheld=True),
        Var("HELM_REPO_TIMEOUT", SECONDS, "120", "seconds for each `helm repo` or `helm registry` "
            "command (and create's one refresh of a stale repository index)", "60", blank="default"),
        Var("REMOTE_CLEANUP_HOSTS", TEXT, "", "hosts cleanup reaches over SSH, `[user@]host[:port]`, "
            "comma-separated", "cleanup@db1.example.com,files.example.com:2222", empty="none"),
        Var("REMOTE_CLEANUP_COMMANDS", TEXT, "", "command templates, one a line; values shell-quoted "
            "(placeholders bare, never in quotes); a value used must be a non-empty word of letters, "
            "digits, `.`, `-`, `_`", "rm -rf -- /srv/stagings/{name}"),
        Var("REMOTE_STRICT_HOST_KEYS", CHOICE, "true", "refuse unknown host keys (`auto`: only when "
            "known_hosts exists; `false`: accept with a warning); a changed key is always refused",
            "auto", blank="default", choices={"auto": "auto", "true": "true", "false": "false"}),
        Var("REMOTE_CONNECT_TIMEOUT", SECONDS, "10", "seconds to connect and authenticate", "5",
            blank="default"),
        Var("REMOTE_COMMAND_TIMEOUT", SECONDS, "300", "seconds for each remote command", "60",
            blank="default"),
    ),
    *_section(
        "The warm command server (check, info, tag_check, archive_check)",
        Var("WARM", FLAG, "true", "hand the call to a warm command server that has Python, Invoke and "
            "the tool already loaded: the same exit code and output as a cold run, without the ~85 ms "
            "start; `false`: every call starts cold ([docs/warm.md](docs/warm.md))", "false",
            environment_only=True),
        Var("WARM_IDLE", SECONDS, "600", "seconds without calls after which the warm server exits "
            "(read when it starts)", "120", blank="default", environment_only=True),
        Var("WARM_LOG", FLAG, "false", "the warm server appends a line per start, call and exit to "
            "`<key>.log` beside its socket, kept under 1 MiB with one older file (read when it starts)", "true", environment_only=True),
    ),
    *_section(
        "The static bundle and debugging",
        Var("OCTOPOD_BUNDLE_CACHE", TEXT, "", "where the static bundle unpacks once "
            "([docs/bundle.md](docs/bundle.md))", "/home/octopod/.cache/oc",
            empty="`~/.cache/octopod-control`", environment_only=True),
        Var("OCTOPOD_DEBUG", TEXT, "", "show the traceback of an internal error", "1",
            environment_only=True),
    ),
]

SCHEMA: dict[str, Var] = {var.name: var for var in VARIABLES}


def sections() -> Iterator[tuple[str, list[Var]]]:
    """The variables grouped by section, in declaration order."""
    seen: dict[str, list[Var]] = {}
    for var in VARIABLES:
        seen.setdefault(var.section, []).append(var)
    yield from seen.items()

"""The keys categraf reads, per TOML table, as facts from its source (flashcat.cloud/categraf; the Go
struct and its `toml:"..."` tags named next to each group). test_categraf.py fails on any key our role
emits that is not listed here: categraf's TOML loader ignores unknown keys silently, so a misspelt key
would otherwise just be a setting that never takes effect.

Read from the source of v0.4.25, the version the role pins (config/config.go, config/inline.go,
pkg/tls/config.go, inputs/prometheus). The peer tier (tests/peers/test_categraf.py) runs that version on
what the role renders."""
from __future__ import annotations

# pkg/tls/config.go ClientConfig (embedded in input instances, the heartbeat, and documented for
# [[writers]] in conf/config.toml).
TLS_CLIENT = {
    "use_tls", "tls_ca", "tls_cert", "tls_key", "tls_key_pwd", "insecure_skip_verify", "tls_server_name",
    "tls_min_version", "tls_max_version",
}

# config/inline.go InternalConfig (labels, metrics_drop, ...) + InstanceConfig (interval_times).
INSTANCE_COMMON = {"labels", "metrics_drop", "metrics_pass", "metrics_name_prefix", "processor_enum", "interval_times"}

# config/inline.go PluginConfig: InternalConfig + interval; `instances` from each input's struct.
PLUGIN_TOP = {"interval", "labels", "metrics_drop", "metrics_pass", "metrics_name_prefix", "processor_enum", "instances"}

CONFIG_TOML = {
    # config/config.go ConfigType
    "": {"global", "writer_opt", "writers", "logs", "http", "prometheus", "ibex", "heartbeat", "log",
         "http_provider"},
    # config/config.go Global (+ concurrency, conf/config.toml of current releases)
    "global": {"print_configs", "hostname", "omit_hostname", "labels", "precision", "interval", "providers",
               "concurrency"},
    # config/config.go Log
    "log": {"file_name", "max_size", "max_age", "max_backups", "local_time", "compress"},
    # config/config.go WriterOpt
    "writer_opt": {"batch", "chan_size"},
    # config/config.go WriterOption; TLS keys as documented under [[writers]] in conf/config.toml
    "writers": {"url", "basic_auth_user", "basic_auth_pass", "headers", "timeout", "dial_timeout",
                "max_idle_conns_per_host"} | TLS_CLIENT,
    # config/config.go HTTP (+ ignore_hostname, ignore_global_labels from conf/config.toml)
    "http": {"enable", "address", "print_access", "run_mode", "cert_file", "key_file", "read_timeout",
             "write_timeout", "idle_timeout", "ignore_hostname", "ignore_global_labels"},
    # config/config.go IbexConfig (Enable has no tag: BurntSushi/toml matches `enable` case-insensitively)
    "ibex": {"enable", "interval", "meta_dir", "servers"},
    # config/config.go HeartbeatConfig (+ embedded HTTPProxy and tls.ClientConfig)
    "heartbeat": {"enable", "url", "interval", "basic_auth_user", "basic_auth_pass", "headers", "timeout",
                  "dial_timeout", "max_idle_conns_per_host", "http_proxy"} | TLS_CLIENT,
}

# inputs/prometheus/prometheus.go Instance + config/urllabel.go UrlLabel + INSTANCE_COMMON + TLS_CLIENT;
# duplication_allowed as documented in conf/input.prometheus/prometheus.toml.
PROMETHEUS_INSTANCE = {
    "urls", "consul", "name_prefix", "bearer_token_string", "bearer_token_file", "username", "password",
    "timeout", "ignore_metrics", "ignore_label_keys", "headers", "url_label_key", "url_label_value",
    "url_label_pair", "duplication_allowed",
} | INSTANCE_COMMON | TLS_CLIENT

# Values our role must emit (not just may): the contract with the issue and with Prometheus.
REQUIRED = {
    "global": {"hostname", "interval", "labels"},
    "writers": {"url", "timeout", "dial_timeout"},
    "heartbeat": {"enable"},
}


def unknown_config_keys(doc: dict) -> list[str]:
    """Every key of a parsed config.toml that categraf does not read, as 'table.key'."""
    bad = [f".{k}" for k in doc if k not in CONFIG_TOML[""]]
    for table, allowed in CONFIG_TOML.items():
        if not table or table not in doc:
            continue
        entries = doc[table] if isinstance(doc[table], list) else [doc[table]]
        for entry in entries:
            for key in entry:
                if key not in allowed:
                    bad.append(f"{table}.{key}")
    return bad


# The machine inputs the role renders by default in host mode: their own keys (inputs/<name>/<name>.go), all
# at the top of the file, since none of them has [[instances]].
SYSTEM_INPUT_KEYS = {
    "cpu": {"collect_per_cpu"}, "mem": {"collect_platform_fields"},
    "disk": {"mount_points", "ignore_fs", "ignore_mount_points"}, "diskio": {"devices"},
    "net": {"collect_protocol_stats", "interfaces", "enable_loopback_stats", "enable_link_down_stats"},
    "netstat": {"disable_summary_stats", "disable_connection_stats", "tcp_ext", "ip_ext"},
    "system": {"collect_user_number"}, "kernel": set(), "processes": {"force_ps", "force_proc"},
}


def unknown_input_keys(doc: dict, instance_keys: set[str] | None, plugin_keys: set[str] = frozenset()) -> list[str]:
    """Unknown keys of an input file; instance keys are checked only when known (input.prometheus)."""
    bad = [k for k in doc if k not in PLUGIN_TOP | plugin_keys]
    if instance_keys is not None:
        for i, instance in enumerate(doc.get("instances", [])):
            bad += [f"instances[{i}].{k}" for k in instance if k not in instance_keys]
    return bad

"""`modelgate-deploy render ALIAS [--kserve] [--dry-run=server]`: the manifests the suite would
apply, printed as YAML; with `--dry-run=server` also sent to the cluster with dryRun=All, so the
API server (and its admission webhooks) judges them without storing anything."""

from __future__ import annotations

import argparse
import sys

import yaml

from deploy.catalog import DEFAULT_CATALOG, CatalogError, load_catalog
from deploy.k8s.apply import Cluster, Conflict
from deploy.k8s.config import KubeSettings, api_client_from
from deploy.k8s.errors import ClusterUnavailable, ManifestError
from deploy.k8s.manifests import plan


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelgate-deploy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="print an alias's manifests as YAML")
    render.add_argument("alias")
    render.add_argument("--kserve", action="store_true",
                        help="the InferenceService path of an alias that has a kserve block")
    render.add_argument("--namespace", default="default")
    render.add_argument("--model-source", action="append", default=[], metavar="ALIAS=SOURCE",
                        help="hub (the catalog's Hub id and revision) or pvc:PATH (pre-staged)")
    render.add_argument("--run-id", default=None, help="the run id label to put on the objects")
    render.add_argument("--runtime-class", default=None,
                        help="runtimeClassName for GPU pods (e.g. nvidia)")
    render.add_argument("--dry-run", choices=["none", "server"], default="none",
                        help="server: also send them with dryRun=All (nothing is stored)")
    render.add_argument("--kube-context", default=None)
    render.add_argument("--kubeconfig", default=None)
    render.add_argument("--field-manager", default="modelgate")
    render.add_argument("--catalog", default=DEFAULT_CATALOG)
    return parser


def parse_sources(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        alias, sep, source = value.partition("=")
        if not sep or not alias or not source:
            raise ManifestError(f"--model-source {value!r}: expected ALIAS=hub or ALIAS=pvc:PATH")
        out[alias] = source
    return out


def _render(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    entry = catalog.get(args.alias)
    if args.kserve and entry.kserve is None:
        print(f"modelgate-deploy: alias {args.alias!r} has no kserve block", file=sys.stderr)
        return 2
    p = plan(entry, args.namespace, prefer_kserve=args.kserve,
             sources=parse_sources(args.model_source), run_id=args.run_id,
             runtime_class=args.runtime_class)
    if not p.manifests:
        print(f"# {args.alias}: backend {entry.backend}: nothing to deploy")
        return 0
    print(yaml.safe_dump_all(p.manifests, sort_keys=False, width=1000), end="")
    if args.dry_run != "server":
        return 0
    settings = KubeSettings(namespace=args.namespace, kube_context=args.kube_context,
                            kubeconfig=args.kubeconfig, field_manager=args.field_manager)
    cluster = Cluster(api_client_from(settings), settings.field_manager,
                      settings.request_timeout_s)
    failed = 0
    for manifest in p.manifests:
        where = f"{manifest['kind']}/{args.namespace}/{manifest['metadata']['name']}"
        try:
            cluster.apply(manifest, dry_run=True)
            print(f"# server dry run: {where}: accepted", file=sys.stderr)
        except Conflict as conflict:
            failed += 1
            print(f"# server dry run: {where}: conflict with {', '.join(conflict.managers)} on "
                  f"{', '.join(conflict.fields) or conflict.message}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - report every manifest, then fail
            failed += 1
            status = getattr(exc, "status", None)
            body = getattr(exc, "body", None) or exc
            print(f"# server dry run: {where}: refused ({status}): {body}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _render(args)
    except (CatalogError, ManifestError, ClusterUnavailable, KeyError) as exc:
        print(f"modelgate-deploy: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

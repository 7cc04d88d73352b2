"""Gate kinds, registered once: `gates/kinds/<kind>/` each holds a typed config's measuring
function (`registry.gate_kind`) and the helpers only it uses."""

"""The partner registry: the banks of the network, each with its eligibility policy, push
endpoint, decision key and state (active or suspended).

``service``: register, update, suspend, list. ``convert``: partners and policies as protobuf.
``servicer``: the AdminService RPCs that manage them.
"""

from gateway.partners.service import PartnerChanges, PartnerRegistry, require_partner

__all__ = ["PartnerChanges", "PartnerRegistry", "require_partner"]

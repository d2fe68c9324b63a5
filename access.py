"""Who may call memory_hygiene: the one check every public entry point makes first.

Odoo's RPC layer (``/web/dataset/call_kw``, ``execute_kw``) lets any logged-in
user, portal users included, call any public method (no leading underscore) of
any model on any id, and checks no access right before the call. The ACLs and
menus of this addon protect its views and records, not its methods. So every
public method this addon defines or overrides calls :func:`check_admin` before
it reads or changes anything.
"""

from odoo.exceptions import AccessError

#: The group of the people this addon serves: Settings administrators.
ADMIN_GROUP = "base.group_system"


def is_admin(env):
    """Whether ``env`` may use memory_hygiene: a Settings admin, or the superuser mode.

    ``env.su`` passes on purpose. RPC never builds a superuser environment for
    its caller: ``su`` is set only by server code (``sudo()``), by environments
    of the superuser (scheduled actions run as ``__system__``, module
    installation, ``odoo-bin shell``), and by the endpoints once the token is
    checked. Such code has already decided who it acts for; refusing it would
    break the addon's own crons and endpoints without stopping any remote caller.
    """
    return env.su or env.user.has_group(ADMIN_GROUP)


def check_admin(env):
    """Raise :class:`~odoo.exceptions.AccessError` unless :func:`is_admin`.

    Called first by every public method of the addon's models, so that a
    refused call reads and changes nothing.
    """
    if not is_admin(env):
        raise AccessError(env._("Memory Hygiene is for Settings administrators only."))

"""Who is in which group and which connections belong to which user, drawn from a run's seed.

Think of a school: every pupil (a client connection) sits in at most ``groups_per_client`` classes, every
class (a group) has exactly ``group_size`` pupils, and the seating plan is drawn once from the run's seed.
The model and the load generator call the same function with the same sizes and seed, so a simulated
group and a measured one hold the very same clients.

The draw uses a random stream of its own (derived from the seed and :data:`MEMBERSHIP_STREAM`), so
turning groups on leaves every other random number of a run where it was.

Pure module: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "MEMBERSHIP_STREAM",
    "SENDS_STREAM",
    "Membership",
    "connections_of_user",
    "draw_connected",
    "draw_connection_send",
    "draw_group_send",
    "draw_membership",
    "draw_user_audience",
    "draw_user_send",
    "sends_rng",
    "user_of_clients",
]

IntArray = npt.NDArray[np.int64]

MEMBERSHIP_STREAM = 16
"""Second word of the membership generator's seed: ``default_rng([seed, MEMBERSHIP_STREAM])``."""

SENDS_STREAM = 17
"""Second word of the seed of the generator that picks each send's group and sender (:func:`sends_rng`)."""


@dataclass(frozen=True, slots=True)
class Membership:
    """The groups' members (one row per group, sorted client indices) and each client's user.

    Example (six clients, three groups of two, one group each; two connections per user):

        >>> from simscale.config.membership import draw_membership
        >>> membership = draw_membership(seed=1, clients=6, groups=3, group_size=2, groups_per_client=1,
        ...                              connections_per_user=2)
        >>> membership.members.shape, sorted(membership.members.ravel().tolist())
        ((3, 2), [0, 1, 2, 3, 4, 5])
        >>> membership.user_of.tolist(), membership.users
        ([0, 0, 1, 1, 2, 2], 3)
    """

    members: IntArray
    """``members[g]``: the client indices in group ``g`` (shape ``groups × group_size``)."""
    user_of: IntArray
    """``user_of[c]``: the user that client ``c``'s connection belongs to."""
    users: int
    """How many users there are."""

    def connections_of_user(self, user: int, connections_per_user: int) -> IntArray:
        """The clients (connections) of ``user``: consecutive indices, the last user may have fewer."""
        return connections_of_user(user, connections_per_user, len(self.user_of))


def user_of_clients(clients: int, connections_per_user: int) -> IntArray:
    """Client ``c`` is a connection of user ``c // connections_per_user`` (several tabs of one user)."""
    return np.arange(clients, dtype=np.int64) // connections_per_user


def connections_of_user(user: int, connections_per_user: int, clients: int) -> IntArray:
    """The clients of ``user`` (the inverse of :func:`user_of_clients`): ``u·k .. u·k + k - 1``, cut at ``clients``.

    Example (seven clients, three connections per user: the last user has one):

        >>> from simscale.config.membership import connections_of_user
        >>> connections_of_user(1, 3, 7).tolist(), connections_of_user(2, 3, 7).tolist()
        ([3, 4, 5], [6])
    """
    start = user * connections_per_user
    return np.arange(start, min(start + connections_per_user, clients), dtype=np.int64)


def draw_membership(
    *, seed: int, clients: int, groups: int, group_size: int, groups_per_client: int, connections_per_user: int
) -> Membership:
    """Draw every group's members at random, reproducibly from ``seed``.

    Each group takes ``group_size`` distinct clients among those in the fewest groups so far (ties
    broken at random), so no client is in more than ``groups_per_client`` groups whenever
    ``groups × group_size <= clients × groups_per_client``.

    Raises:
        ValueError: the sizes cannot be met (naming the field and what is allowed).
    """
    if group_size > clients:
        raise ValueError(f"group_size must be <= clients ({clients}), got {group_size}")
    if groups * group_size > clients * groups_per_client:
        raise ValueError(
            f"groups × group_size ({groups} × {group_size} = {groups * group_size}) must be <= "
            f"clients × groups_per_client ({clients} × {groups_per_client} = {clients * groups_per_client})"
        )
    rng = np.random.default_rng([seed, MEMBERSHIP_STREAM])
    joined = np.zeros(clients, dtype=np.int64)
    members = np.empty((groups, group_size), dtype=np.int64)
    for group in range(groups):
        # Fewest memberships first; a uniform draw in [0, 1) breaks ties at random.
        keys = joined + rng.random(clients)
        chosen = np.argpartition(keys, group_size - 1)[:group_size] if group_size < clients else np.arange(clients)
        members[group] = np.sort(chosen)
        joined[chosen] += 1
    users = -(-clients // connections_per_user)
    return Membership(members, user_of_clients(clients, connections_per_user), users)


def sends_rng(seed: int) -> np.random.Generator:
    """The generator that picks each group send's group and sender: the model and the load generator
    each make one from the same seed, so with the same send times and the same clients connected they
    pick the very same sends."""
    return np.random.default_rng([seed, SENDS_STREAM])


def draw_connected(rng: np.random.Generator, connected: npt.NDArray[np.bool_]) -> int:
    """A uniformly random connected client (``connected[c]``: client ``c`` is connected), ``-1`` if none is.

    Rejection sampling first (cheap while most clients are connected), then a scan: the very draws
    :meth:`simscale.model.population.ClientPopulation.random_connected` makes.
    """
    if not connected.any():
        return -1
    for _ in range(32):
        candidate = int(rng.integers(len(connected)))
        if connected[candidate]:
            return candidate
    online = np.flatnonzero(connected)
    return int(online[rng.integers(len(online))])


def draw_user_send(rng: np.random.Generator, users: int, connected: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """A uniformly random connected sender, then a uniformly random user to send to.

    Returns ``(user, sender)``; the sender is ``-1`` when nobody is connected (then nothing is sent).
    The model and the load generator both call this with :func:`sends_rng`'s generator, so with the
    same send times and the same clients connected they send to the same users; the recipients are
    the user's connected connections (:func:`connections_of_user`).

    Example:

        >>> import numpy as np
        >>> from simscale.config.membership import draw_user_send, sends_rng
        >>> connected = np.array([True, False, True, True])
        >>> draw_user_send(sends_rng(3), 2, connected) == draw_user_send(sends_rng(3), 2, connected)
        True
        >>> sorted({draw_user_send(sends_rng(s), 2, connected)[1] for s in range(40)})
        [0, 2, 3]
    """
    sender = draw_connected(rng, connected)
    return int(rng.integers(users)), sender


def draw_connection_send(rng: np.random.Generator, connected: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """A uniformly random connected sender, then a uniformly random client to send to (connected or not).

    Returns ``(target, sender)``; the sender is ``-1`` when nobody is connected. A target that is not
    connected has no recipient: the send is counted with none, as the hub delivers it to nobody.

    Example:

        >>> import numpy as np
        >>> from simscale.config.membership import draw_connection_send, sends_rng
        >>> connected = np.array([True, False, True])
        >>> draw_connection_send(sends_rng(2), connected) == draw_connection_send(sends_rng(2), connected)
        True
    """
    # A user send where every client is its own user: one rule, so the model's draws are these too.
    return draw_user_send(rng, len(connected), connected)


def draw_group_send(rng: np.random.Generator, members: IntArray, connected: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """A uniformly random group and, among its connected members, a uniformly random sender.

    ``connected[c]`` says whether client ``c`` is connected. Returns ``(group, sender)``, the sender
    ``-1`` when no member of the group is connected (then nothing is sent).

    Example:

        >>> import numpy as np
        >>> from simscale.config.membership import draw_group_send, sends_rng
        >>> members = np.array([[0, 1], [2, 3]])
        >>> connected = np.array([True, True, False, False])
        >>> picks = [draw_group_send(sends_rng(1), members, connected) for _ in range(2)]
        >>> picks[0] == picks[1]  # the same seed picks the same send
        True
        >>> sorted({draw_group_send(sends_rng(s), members, connected)[1] for s in range(40)})
        [-1, 0, 1]
    """
    group = int(rng.integers(members.shape[0]))
    row = members[group]
    online = row[connected[row]]
    if len(online) == 0:
        return group, -1
    return group, int(online[rng.integers(len(online))])


def draw_user_audience(
    rng: np.random.Generator, users: int, connections_per_user: int, clients: int, connected: npt.NDArray[np.bool_]
) -> tuple[IntArray, int]:
    """:func:`draw_user_send`, with the user's clients (:func:`connections_of_user`) in place of the user."""
    user, sender = draw_user_send(rng, users, connected)
    return connections_of_user(user, connections_per_user, clients), sender

"""The revision policy (``revisions.decide``) and ``graph.Graph`` on graphs built in memory.

No database and no revision files: each graph is a list of :class:`RevisionFile` records, as
the ``graph`` worker reports them, so these tests pin the policy every command applies.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from runner.config import Settings
from runner.errors import (
    ExitCode,
    MultipleHeadsError,
    RevisionGraphError,
    UnknownRevisionError,
    UnstampedDatabaseError,
)
from runner.graph import Graph, RevisionFile
from runner.revisions import RevisionState, decide


def rev(
    revision: str,
    down: Sequence[str] = (),
    *,
    depends_on: Sequence[str] = (),
    labels: Sequence[str] = (),
) -> RevisionFile:
    return RevisionFile(
        revision=revision,
        down_revisions=tuple(down),
        dependencies=tuple(depends_on),
        branch_labels=tuple(labels),
        path=f"/project/migrations/versions/{revision}.py",
    )


def policy(
    graph: Graph,
    db_heads: Sequence[str] = (),
    *,
    version_table_exists: bool = True,
    user_tables: Sequence[str] = (),
    settings: Settings | None = None,
) -> RevisionState:
    return decide(
        graph,
        tuple(db_heads),
        version_table_exists,
        list(user_tables),
        settings or Settings(),
    )


def before(order: Sequence[str], first: str, then: str) -> bool:
    return order.index(first) < order.index(then)


# a1 -> b2 -> c3
LINEAR = [rev("a1"), rev("b2", ["a1"]), rev("c3", ["b2"])]
# a1 -> b2 and a1 -> c3: two unlabelled heads
FORK = [rev("a1"), rev("b2", ["a1"]), rev("c3", ["a1"])]
# a1 -> (b2, c3) -> d4: a merge revision with two parents
DIAMOND = [rev("a1"), rev("b2", ["a1"]), rev("c3", ["a1"]), rev("d4", ["b2", "c3"])]


# --- linear chain --------------------------------------------------------------------------


def test_linear_chain_from_an_empty_database_applies_the_whole_chain_in_order() -> None:
    state = policy(Graph(LINEAR), version_table_exists=False)
    assert state.refusal is None
    assert state.target == "head"
    assert state.pending == ("a1", "b2", "c3")
    assert state.script_heads == ("c3",)
    assert state.unknown == ()
    assert not state.at_head


def test_linear_chain_pending_starts_after_the_stamped_revision() -> None:
    state = policy(Graph(LINEAR), ["a1"])
    assert state.refusal is None
    assert state.target == "head"
    assert state.pending == ("b2", "c3")
    assert state.db_heads == ("a1",)


def test_linear_chain_at_head_has_nothing_pending() -> None:
    state = policy(Graph(LINEAR), ["c3"])
    assert state.refusal is None
    assert state.target == "head"
    assert state.pending == ()
    assert state.at_head


# --- several heads -------------------------------------------------------------------------


def test_two_unlabelled_heads_are_refused_with_the_merge_hint() -> None:
    state = policy(Graph(FORK), ["a1"])
    assert isinstance(state.refusal, MultipleHeadsError)
    assert state.refusal.exit_code is ExitCode.REVISION_GRAPH
    assert state.refusal.heads == ("b2", "c3")
    assert state.refusal.hint is not None
    assert "alembic merge" in state.refusal.hint
    assert "b2 c3" in state.refusal.hint
    assert state.target is None
    assert state.labelled == {}


def test_allow_multiple_heads_upgrades_every_head() -> None:
    state = policy(Graph(FORK), ["a1"], settings=Settings(allow_multiple_heads=True))
    assert state.refusal is None
    assert state.target == "heads"
    assert sorted(state.pending) == ["b2", "c3"]
    assert state.labelled == {}


def test_heads_with_distinct_branch_labels_are_an_intentional_layout() -> None:
    graph = Graph(
        [rev("a1"), rev("b2", ["a1"], labels=["expand"]), rev("c3", ["a1"], labels=["contract"])]
    )
    state = policy(graph, ["a1"])
    assert state.refusal is None
    assert state.target == "heads"
    assert dict(state.labelled) == {"b2": ["expand"], "c3": ["contract"]}
    assert sorted(state.pending) == ["b2", "c3"]


def test_branch_labels_carried_down_a_branch_count_for_its_head() -> None:
    # The label sits on the first revision of each branch; the heads inherit it.
    graph = Graph(
        [
            rev("a1"),
            rev("b2", ["a1"], labels=["expand"]),
            rev("b3", ["b2"]),
            rev("c2", ["a1"], labels=["contract"]),
        ]
    )
    state = policy(graph, ["a1"])
    assert state.refusal is None
    assert state.target == "heads"
    assert dict(state.labelled) == {"b3": ["expand"], "c2": ["contract"]}
    assert before(state.pending, "b2", "b3")


def test_heads_sharing_an_inherited_label_are_refused() -> None:
    # "main" is on the common ancestor, so both heads carry it: not distinct.
    graph = Graph([rev("a1", labels=["main"]), rev("b2", ["a1"]), rev("c3", ["a1"])])
    assert graph.branch_labels("b2") == graph.branch_labels("c3") == ("main",)
    state = policy(graph, ["a1"])
    assert isinstance(state.refusal, MultipleHeadsError)
    assert state.target is None
    assert state.labelled == {}


def test_heads_sharing_a_label_below_a_labelled_branch_point_are_refused() -> None:
    graph = Graph(
        [rev("a1"), rev("b2", ["a1"], labels=["x"]), rev("b3", ["b2"]), rev("b4", ["b2"])]
    )
    state = policy(graph, ["b2"])
    assert isinstance(state.refusal, MultipleHeadsError)
    assert state.refusal.heads == ("b3", "b4")
    assert state.target is None


def test_one_unlabelled_head_among_labelled_ones_is_refused() -> None:
    graph = Graph([rev("a1"), rev("b2", ["a1"], labels=["expand"]), rev("c3", ["a1"])])
    state = policy(graph, ["a1"])
    assert isinstance(state.refusal, MultipleHeadsError)
    assert state.target is None
    assert state.labelled == {}


def test_one_unlabelled_head_is_accepted_with_allow_multiple_heads() -> None:
    graph = Graph([rev("a1"), rev("b2", ["a1"], labels=["expand"]), rev("c3", ["a1"])])
    state = policy(graph, ["a1"], settings=Settings(allow_multiple_heads=True))
    assert state.refusal is None
    assert state.target == "heads"


def test_the_same_label_written_on_two_revisions_is_a_graph_error() -> None:
    # Alembic itself rejects this when the map is built; Graph reports it as exit 6.
    with pytest.raises(RevisionGraphError) as caught:
        Graph([rev("a1"), rev("b2", ["a1"], labels=["x"]), rev("c3", ["a1"], labels=["x"])])
    assert caught.value.exit_code is ExitCode.REVISION_GRAPH
    assert "'x'" in caught.value.message


# --- merges and depends_on -----------------------------------------------------------------


def test_merge_revision_comes_after_both_parents_and_they_after_the_root() -> None:
    state = policy(Graph(DIAMOND), version_table_exists=False)
    assert state.refusal is None
    assert state.target == "head"
    assert state.script_heads == ("d4",)
    assert sorted(state.pending) == ["a1", "b2", "c3", "d4"]
    assert state.pending[0] == "a1"
    assert state.pending[-1] == "d4"


def test_merge_from_one_applied_parent_applies_only_the_other_branch_and_the_merge() -> None:
    state = policy(Graph(DIAMOND), ["b2"])
    assert state.refusal is None
    assert state.pending == ("c3", "d4")


def test_database_on_both_branches_of_a_merge_applies_only_the_merge() -> None:
    state = policy(Graph(DIAMOND), ["b2", "c3"])
    assert state.refusal is None
    assert state.pending == ("d4",)


LABELLED_WITH_DEPENDENCY = [
    rev("a1", labels=["main"]),
    rev("b2", ["a1"], depends_on=["x1"]),
    rev("x1", labels=["other"]),
]


def test_depends_on_pulls_the_dependency_in_first() -> None:
    graph = Graph(LABELLED_WITH_DEPENDENCY)
    state = policy(graph, ["a1"])
    assert state.refusal is None
    assert state.target == "heads"
    assert dict(state.labelled) == {"b2": ["main"], "x1": ["other"]}
    assert sorted(state.pending) == ["b2", "x1"]
    assert before(state.pending, "x1", "b2")


def test_depends_on_applies_both_roots_before_the_dependent_revision() -> None:
    state = policy(Graph(LABELLED_WITH_DEPENDENCY), version_table_exists=False)
    assert state.refusal is None
    assert sorted(state.pending) == ["a1", "b2", "x1"]
    assert before(state.pending, "a1", "b2")
    assert before(state.pending, "x1", "b2")


def test_depends_on_already_applied_is_not_pending_again() -> None:
    state = policy(Graph(LABELLED_WITH_DEPENDENCY), ["a1", "x1"])
    assert state.refusal is None
    assert state.pending == ("b2",)


def test_a_depended_on_root_stays_a_head_as_in_alembic() -> None:
    # depends_on is not a down_revision: x1 keeps no descendant, so it is still a head and
    # the two unlabelled heads are refused unless every head is upgraded on purpose.
    graph = Graph([rev("a1"), rev("b2", ["a1"]), rev("x1"), rev("c3", ["b2"], depends_on=["x1"])])
    assert graph.heads == ("c3", "x1")
    assert isinstance(policy(graph, ["b2"]).refusal, MultipleHeadsError)
    state = policy(graph, ["b2"], settings=Settings(allow_multiple_heads=True))
    assert state.refusal is None
    assert state.target == "heads"
    assert state.pending == ("x1", "c3")


# --- unknown stamp, unstamped tables -------------------------------------------------------


def test_unknown_stamped_revision_is_refused() -> None:
    state = policy(Graph(LINEAR), ["ff99ff99ff99"])
    assert isinstance(state.refusal, UnknownRevisionError)
    assert state.refusal.exit_code is ExitCode.REVISION_GRAPH
    assert state.refusal.revisions == ("ff99ff99ff99",)
    assert "ff99ff99ff99" in state.refusal.message
    assert state.target is None
    assert state.unknown == ("ff99ff99ff99",)
    assert state.pending == ()
    assert not state.at_head


def test_allow_unknown_revision_skips_the_upgrade_without_refusing() -> None:
    state = policy(Graph(LINEAR), ["ff99ff99ff99"], settings=Settings(allow_unknown_revision=True))
    assert state.refusal is None
    assert state.target is None
    assert state.pending == ()
    assert state.unknown == ("ff99ff99ff99",)


def test_only_the_unknown_one_of_several_stamped_revisions_is_named() -> None:
    state = policy(
        Graph(FORK), ["b2", "ff99ff99ff99"], settings=Settings(allow_multiple_heads=True)
    )
    assert isinstance(state.refusal, UnknownRevisionError)
    assert state.unknown == ("ff99ff99ff99",)
    assert state.target is None


def test_multiple_heads_refusal_wins_over_an_unknown_stamp() -> None:
    state = policy(Graph(FORK), ["ff99ff99ff99"])
    assert isinstance(state.refusal, MultipleHeadsError)
    assert state.unknown == ("ff99ff99ff99",)
    assert state.target is None


def test_tables_without_a_stamp_are_refused() -> None:
    state = policy(Graph(LINEAR), [], version_table_exists=False, user_tables=["users", "files"])
    assert isinstance(state.refusal, UnstampedDatabaseError)
    assert state.refusal.exit_code is ExitCode.REVISION_GRAPH
    assert state.refusal.tables == ("users", "files")
    assert "alembic_version" in state.refusal.message
    assert state.target is None


def test_an_empty_version_table_with_tables_is_refused_too() -> None:
    state = policy(Graph(LINEAR), [], version_table_exists=True, user_tables=["users"])
    assert isinstance(state.refusal, UnstampedDatabaseError)
    assert state.target is None


def test_unstamped_refusal_names_the_configured_version_table() -> None:
    settings = Settings(version_table="my_versions")
    state = policy(Graph(LINEAR), [], user_tables=["users"], settings=settings)
    assert isinstance(state.refusal, UnstampedDatabaseError)
    assert "my_versions" in state.refusal.message


def test_no_stamp_and_no_tables_applies_the_whole_chain() -> None:
    state = policy(Graph(LINEAR), [], version_table_exists=False, user_tables=[])
    assert state.refusal is None
    assert state.target == "head"
    assert state.pending == ("a1", "b2", "c3")
    assert state.version_table_exists is False


def test_tables_are_ignored_once_the_database_is_stamped() -> None:
    state = policy(Graph(LINEAR), ["b2"], user_tables=["users"])
    assert state.refusal is None
    assert state.pending == ("c3",)


# --- Graph ---------------------------------------------------------------------------------


def test_graph_heads_are_sorted_ids() -> None:
    assert Graph(LINEAR).heads == ("c3",)
    assert Graph(FORK).heads == ("b2", "c3")
    assert Graph(DIAMOND).heads == ("d4",)
    assert Graph(LABELLED_WITH_DEPENDENCY).heads == ("b2", "x1")


def test_graph_ancestors_include_the_heads_and_follow_both_parents() -> None:
    graph = Graph(DIAMOND)
    assert graph.ancestors(["a1"]) == {"a1"}
    assert graph.ancestors(["b2"]) == {"a1", "b2"}
    assert graph.ancestors(["d4"]) == {"a1", "b2", "c3", "d4"}
    assert graph.ancestors(["b2", "c3"]) == {"a1", "b2", "c3"}
    assert graph.ancestors([]) == set()


def test_graph_ancestors_follow_depends_on() -> None:
    graph = Graph(LABELLED_WITH_DEPENDENCY)
    assert graph.ancestors(["b2"]) == {"a1", "b2", "x1"}


@pytest.mark.parametrize(
    "files",
    [LINEAR, FORK, DIAMOND, LABELLED_WITH_DEPENDENCY],
    ids=["linear", "fork", "diamond", "depends_on"],
)
def test_topological_order_lists_every_revision_after_its_parents_and_dependencies(
    files: list[RevisionFile],
) -> None:
    order = Graph(files).topological()
    assert sorted(order) == sorted(f.revision for f in files)
    for f in files:
        for parent in (*f.down_revisions, *f.dependencies):
            assert before(order, parent, f.revision), (parent, f.revision, order)


def test_graph_parents_and_files_come_from_the_records() -> None:
    graph = Graph(DIAMOND)
    assert graph.parents("d4") == ("b2", "c3")
    assert graph.parents("a1") == ()
    assert graph.files["c3"].path.endswith("c3.py")


def test_graph_from_worker_records() -> None:
    graph = Graph.from_records(
        [
            {
                "revision": "a1",
                "down_revision": [],
                "dependencies": [],
                "branch_labels": [],
                "path": "a1.py",
            },
            {
                "revision": "b2",
                "down_revision": ["a1"],
                "dependencies": [],
                "branch_labels": ["main"],
                "path": "b2.py",
            },
        ]
    )
    assert graph.heads == ("b2",)
    assert graph.branch_labels("b2") == ("main",)
    assert graph.resolve("main") == ("b2",)


def test_knows_full_ids_unique_prefixes_and_labels() -> None:
    graph = Graph(
        [
            rev("abcd1234"),
            rev("abce5678", ["abcd1234"], labels=["main"]),
        ]
    )
    assert graph.knows("abcd1234")
    assert graph.knows("abcd")  # a unique prefix
    assert graph.knows("abce56")
    assert graph.knows("main")  # a branch label
    assert not graph.knows("abc")  # a prefix of both: ambiguous
    assert not graph.knows("ab")
    assert not graph.knows("abcd1234x")
    assert not graph.knows("ffff")


def test_knows_does_not_prefix_match_ids_of_three_characters_or_fewer() -> None:
    # Alembic's partial-id lookup skips revision ids shorter than four characters.
    graph = Graph(LINEAR)
    assert graph.knows("a1")
    assert not graph.knows("a")
    long_ids = Graph([rev("abcd1234"), rev("bcde2345", ["abcd1234"])])
    assert long_ids.knows("a")


def test_knows_is_false_for_an_ambiguous_prefix() -> None:
    graph = Graph([rev("abcd0001"), rev("abcd0002", ["abcd0001"])])
    assert graph.knows("abcd0001")
    assert not graph.knows("abcd")


def test_a_cycle_is_a_revision_graph_error() -> None:
    with pytest.raises(RevisionGraphError) as caught:
        Graph([rev("a1", ["b2"]), rev("b2", ["a1"])])
    assert caught.value.exit_code is ExitCode.REVISION_GRAPH
    assert "cycle" in caught.value.message.lower()


def test_a_self_loop_is_a_revision_graph_error() -> None:
    with pytest.raises(RevisionGraphError):
        Graph([rev("a1", ["a1"])])


# Graph's docstring promises RevisionGraphError for any graph Alembic cannot build, but a
# down_revision or depends_on naming a missing revision escapes as Alembic's raw KeyError
# (after a UserWarning, which this suite turns into an error). In production the graph worker
# hits the same KeyError first and load_graph maps it to exit 6, so only Graph's own contract
# is broken. strict: this starts failing (XPASS) once runner/graph.py is fixed.


def test_a_down_revision_naming_a_missing_revision_is_a_revision_graph_error() -> None:
    with pytest.raises(RevisionGraphError) as caught:
        Graph([rev("a1"), rev("b2", ["gone"])])
    assert "gone" in caught.value.message


def test_a_depends_on_naming_a_missing_revision_is_a_revision_graph_error() -> None:
    with pytest.raises(RevisionGraphError) as caught:
        Graph([rev("a1"), rev("b2", ["a1"], depends_on=["gone"])])
    assert "gone" in caught.value.message


def test_every_lineage_at_once_is_what_alembic_walks_for_each_revision() -> None:
    # Merges, a dependency on a branch label whose branch goes on, one on a root of another
    # branch, and a merge of branches joined by a dependency: the lineages computed at once
    # (for the snapshot build) must be Alembic's own walk down to base, revision by revision.
    files = [
        rev("a1"),
        rev("b2", ["a1"], labels=["lbl"]),
        rev("c3", ["b2"]),
        rev("x1", labels=["other"]),
        rev("y2", ["x1"], depends_on=["lbl"]),
        rev("z3", ["y2"], depends_on=["a1"]),
        rev("m4", ["z3", "c3"]),
        rev("n5", ["m4"], depends_on=["x1"]),
    ]
    graph = Graph(files)
    lineages = graph.lineages()
    assert set(lineages) == {f.revision for f in files}
    for f in files:
        assert lineages[f.revision] == graph.ancestors([f.revision]), f.revision
    assert lineages["y2"] == {"a1", "b2", "x1", "y2"}
    assert lineages["n5"] == {"a1", "b2", "c3", "x1", "y2", "z3", "m4", "n5"}


def test_a_depends_on_naming_an_id_prefix_is_a_revision_graph_error() -> None:
    # Alembic looks depends_on up by exact id or label: a prefix is a KeyError inside it.
    with pytest.raises(RevisionGraphError) as caught:
        Graph([rev("abcd1"), rev("b2", ["abcd1"], depends_on=["abcd"])])
    assert "'abcd'" in caught.value.message
    assert "full revision id" in (caught.value.hint or "")

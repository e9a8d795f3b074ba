-- A run's row is rewritten by every transition of its graph; what never
-- changes, or changes a node at a time, lives apart so that a transition's
-- cost does not grow with the size of the run.

-- The workflow, written once when the run is created.
CREATE TABLE run_workflows (
    run_id    INTEGER PRIMARY KEY REFERENCES runs (id),
    workflow  TEXT    NOT NULL -- JSON: kiln_model::workflow::Workflow
);
INSERT INTO run_workflows (run_id, workflow)
    SELECT id, workflow FROM runs WHERE workflow IS NOT NULL;
ALTER TABLE runs DROP COLUMN workflow;

-- The run graph's nodes, a row each; `runs.graph` keeps its head. A
-- transition writes the head and the nodes it changed.
CREATE TABLE run_nodes (
    run_id  INTEGER NOT NULL REFERENCES runs (id),
    node    INTEGER NOT NULL,
    state   TEXT    NOT NULL, -- JSON: one node of kiln_core::graph::RunGraph
    PRIMARY KEY (run_id, node)
) WITHOUT ROWID;
INSERT INTO run_nodes (run_id, node, state)
    SELECT r.id, CAST(n.key AS INTEGER), n.value
    FROM runs r, json_each(r.graph, '$.nodes') n
    WHERE r.graph IS NOT NULL AND json_valid(r.graph);
UPDATE runs SET graph = json_remove(graph, '$.nodes')
    WHERE graph IS NOT NULL AND json_valid(graph);

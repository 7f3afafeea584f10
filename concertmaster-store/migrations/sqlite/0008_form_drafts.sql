-- Answers saved part-way through a link, one draft per link, removed when
-- the link takes its submission.
CREATE TABLE form_drafts (
    token_hash TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    saved_at   INTEGER NOT NULL
);

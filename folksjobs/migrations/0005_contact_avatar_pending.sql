-- The import that owes a contact its Gravatar lookup (issue 25): set by the import's
-- upsert, cleared by the avatars job once the answer is written. The latest import to
-- touch a contact owns it, so an answer looked up for an earlier one is never written
-- over it (folksjobs/imports/avatars.py). NULL for nearly every contact: the partial
-- index holds only the lookups still owed, and an import with Gravatar off adds nothing.
ALTER TABLE contacts ADD COLUMN IF NOT EXISTS avatar_pending uuid;
CREATE INDEX IF NOT EXISTS contacts_avatar_pending_idx
    ON contacts (avatar_pending, id) WHERE avatar_pending IS NOT NULL;

-- herald: PostgreSQL schema version 6: the change feed across processes.
-- schema_version: 6
--
-- Every change of a user, its devices or preferences NOTIFYs channel
-- herald_users with the user id; every template change NOTIFYs
-- herald_templates. A herald with store.pg_listen LISTENs to both
-- (store_pg_listen.c) and announces them on its change feed (store.h), so
-- its recipient and template caches stay exact whichever instance wrote.
-- NOTIFY is sent at commit and dropped on rollback; identical payloads of
-- one transaction are sent once. An id too long for a payload (8000 bytes)
-- is sent as '' ("some user": listeners drop every cached user).

CREATE OR REPLACE FUNCTION herald_feed_user() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  id TEXT;
BEGIN
  IF TG_OP = 'DELETE' THEN id := OLD.user_id; ELSE id := NEW.user_id; END IF;
  PERFORM pg_notify('herald_users', CASE WHEN octet_length(id) < 7000 THEN id ELSE '' END);
  IF TG_OP = 'UPDATE' AND OLD.user_id IS DISTINCT FROM NEW.user_id THEN
    PERFORM pg_notify('herald_users',
                      CASE WHEN octet_length(OLD.user_id) < 7000 THEN OLD.user_id ELSE '' END);
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION herald_feed_templates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('herald_templates', '');
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER users_feed AFTER INSERT OR UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION herald_feed_user();
CREATE OR REPLACE TRIGGER devices_feed AFTER INSERT OR UPDATE OR DELETE ON devices
  FOR EACH ROW EXECUTE FUNCTION herald_feed_user();
CREATE OR REPLACE TRIGGER preferences_feed AFTER INSERT OR UPDATE OR DELETE ON preferences
  FOR EACH ROW EXECUTE FUNCTION herald_feed_user();
CREATE OR REPLACE TRIGGER templates_feed AFTER INSERT OR UPDATE OR DELETE ON templates
  FOR EACH STATEMENT EXECUTE FUNCTION herald_feed_templates();

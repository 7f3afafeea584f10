-- Raises `message` as an error: lets one statement refuse itself whole
-- (run/settle_rows.postgres.sql settles many runs in one statement and
-- must change none of them when one cannot be settled).
CREATE FUNCTION concertmaster_refuse(message TEXT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION '%', message;
END
$$;

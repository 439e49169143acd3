-- Raised by the one-statement group commit when a batch would take stock
-- below zero or a user past the limit: the statement stores nothing, and
-- the shop splits the batch to find the orders that do not fit.
CREATE FUNCTION stampede_would_oversell() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the batch would take stock below zero or a user past the limit' USING ERRCODE = 'SB001';
END
$$;

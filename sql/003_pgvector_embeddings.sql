-- Profile embeddings as pgvector's `vector` where the extension is installed (the embedded server and
-- the compose image have it), so similarity queries can use it; a plain real[] elsewhere.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        CREATE EXTENSION IF NOT EXISTS vector;
        ALTER TABLE user_profiles ALTER COLUMN embedding TYPE vector USING embedding::vector;
    END IF;
END
$$;

# The relay worker image: `docker build -t conversion-relay .`
# (`--build-arg EXTRAS=msk` adds Amazon MSK IAM authentication.)
FROM python:3.11-slim
ARG EXTRAS=
WORKDIR /app
COPY pyproject.toml README.md ./
COPY relay ./relay
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" && useradd --uid 10001 --no-create-home relay
USER 10001
EXPOSE 9400
ENTRYPOINT ["relay"]
CMD ["run"]
